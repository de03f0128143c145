"""Real-time endpoints: model processes behind InvokeEndpoint."""
