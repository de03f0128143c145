# %% [markdown]
# # Batch transform with PCA and a bring-your-own DBSCAN container
#
# The SageMaker batch transform notebook, section by section, with `batchform.sdk` in
# place of the `sagemaker` SDK and generated data in place of the Amazon reviews
# dataset: a review log in which users like items of a few planted "tastes". PCA
# reduces the item x user matrix, DBSCAN clusters the reduced items, and the held-out
# items' clusters are checked against the tastes that were planted.
#
# Run it as a script (`python examples/notebook_workflow.py`, add `--endpoint-url
# http://127.0.0.1:8080` to use a running `batchform server`) or open
# `examples/notebook_workflow.ipynb`, the same cells.

# %%
import argparse
import json
import time
from pathlib import Path

import numpy as np

from batchform import sdk
from batchform.quickstart import DBSCAN, build_dataset, review_log

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--endpoint-url", help="a batchform server (default: embedded)")
parser.add_argument("--items", type=int, default=3000)
parser.add_argument("--users", type=int, default=1500)
parser.add_argument("--work", default="notebook-workflow", help="folder for the data")
args, _ = parser.parse_known_args()

# %% [markdown]
# ## 1. Setup
# A session (embedded, or a server's), its default bucket (a local folder, or an S3
# bucket when the session is given one) and a prefix for this walk-through.

# %%
sess = sdk.Session(endpoint_url=args.endpoint_url)
prefix = "sagemaker/DEMO-batch-transform"
role = sdk.get_execution_role(sess)
work = Path(args.work).resolve()
work.mkdir(parents=True, exist_ok=True)


def read_output(key_prefix: str, name: str) -> str:
    """An output object's text, downloaded as the notebook does with `aws s3 cp`."""
    written = sess.download_data(
        str(work / "downloads"), sess.default_bucket(), f"{prefix}/{key_prefix}"
    )
    return Path(next(path for path in written if path.endswith("/" + name))).read_text()


# %% [markdown]
# ## 2. Data
# Users review items of the tastes they like; a few users review a lot. As in the
# notebook, keep heavy reviewers (35+ reviews) and popular items (20+ reviews), make a
# 0/1 item x user matrix, and hold out a small sample of items as "new data".

# %%
events, _ = review_log(args.items, args.users, clusters=6, seed=0)
print(f"{len(events)} reviews by {args.users} users of {args.items} items")
data = build_dataset(args.items, args.users, clusters=6, seed=0, say=print)
held_out = np.zeros(len(data.matrix), dtype=bool)
held_out[data.test_items] = True
train_matrix, test_matrix = data.matrix[~held_out], data.matrix[held_out]
print(f"train {train_matrix.shape}, test {test_matrix.shape}")

# %% [markdown]
# Write both as CSV and upload them, under separate prefixes so the test data is never
# picked up for training.

# %%
np.savetxt(work / "train.csv", train_matrix, delimiter=",", fmt="%d")
np.savetxt(work / "test.csv", test_matrix, delimiter=",", fmt="%d")
train_s3 = sess.upload_data(str(work / "train.csv"), key_prefix=f"{prefix}/train")
test_s3 = sess.upload_data(str(work / "test.csv"), key_prefix=f"{prefix}/test")
train_prefix = train_s3.rsplit("/", 1)[0] + "/"
test_prefix = test_s3.rsplit("/", 1)[0] + "/"
bucket_url = sess.default_bucket_url()

# %% [markdown]
# ## 3. Train PCA
# The built-in PCA: `feature_dim` is the number of users, `num_components` the reduced
# dimension passed on to clustering.

# %%
pca = sdk.Estimator(
    image_uri=sdk.image_uris.retrieve("pca", sess.boto_region_name),
    role=role,
    instance_count=1,
    instance_type="ml.c4.xlarge",
    output_path=f"{bucket_url}/{prefix}/pca/output",
    sagemaker_session=sess,
)
pca.set_hyperparameters(
    feature_dim=train_matrix.shape[1],
    num_components=10,
    subtract_mean=True,
    algorithm_mode="randomized",
    mini_batch_size=500,
)
pca.fit({"train": sdk.inputs.TrainingInput(train_prefix, content_type="text/csv;label_size=0")})

# %% [markdown]
# ## 4. Batch prediction PCA
# A transformer over the training data: `split_type="Line"` so each CSV line is a
# record, `MultiRecord` to pack as many as fit into a request.

# %%
pca_transformer = pca.transformer(
    instance_count=1,
    instance_type="ml.m4.xlarge",
    strategy="MultiRecord",
    assemble_with="Line",
    output_path=f"{bucket_url}/{prefix}/pca/transform/train",
)
started = time.perf_counter()
pca_transformer.transform(train_prefix, content_type="text/csv", split_type="Line")
pca_transformer.wait()
batch_seconds = time.perf_counter() - started
batch_lines = read_output("pca/transform/train", "train.csv.out").splitlines()
batch_components = [
    row["projection"] for line in batch_lines for row in json.loads(line)["projections"]
]
print(f"batch transform: {len(batch_components)} items reduced in {batch_seconds:.1f} s")

# %% [markdown]
# ## 5. Real-time prediction comparison
# The same projections from an endpoint: the data is cut into 500 mini-batches held in
# memory and sent one request at a time, which batch transform did for us.

# %%
pca_predictor = pca.deploy(
    initial_instance_count=1,
    instance_type="ml.m4.xlarge",
    serializer=sdk.serializers.CSVSerializer(),
    deserializer=sdk.deserializers.JSONDeserializer(),
)
started = time.perf_counter()
components = []
for array in np.array_split(train_matrix, 500):
    result = pca_predictor.predict(array)
    components += [r["projection"] for r in result["projections"]]
loop_seconds = time.perf_counter() - started
pca_predictor.delete_endpoint()
agree = np.allclose(np.array(components), np.array(batch_components), atol=1e-4)
print(f"endpoint loop: {len(components)} items in {loop_seconds:.1f} s; same answers: {agree}")

# %% [markdown]
# ## 6. Batch prediction on new data
# A model made from the finished training job, and a transformer from that model over
# the held-out items.

# %%
pca_model = sess.create_model_from_job(pca.latest_training_job.name, name="batch-transform-pca")
pca_test_transformer = sdk.Transformer(
    pca_model,
    1,
    "ml.m4.xlarge",
    strategy="MultiRecord",
    assemble_with="Line",
    output_path=f"{bucket_url}/{prefix}/pca/transform/test",
    sagemaker_session=sess,
)
pca_test_transformer.transform(test_prefix, content_type="text/csv", split_type="Line")
pca_test_transformer.wait()

# %% [markdown]
# ## 7. Bring your own container: DBSCAN
# `examples/dbscan_container` holds `train` and `serve` executables speaking SageMaker's
# training and serving contracts (the notebook's R container, here in Python). It
# trains on PCA's batch output, as the notebook does.

# %%
dbscan = sdk.Estimator(
    image_uri=str(DBSCAN),
    role=role,
    instance_count=1,
    instance_type="ml.c4.xlarge",
    output_path=f"{bucket_url}/{prefix}/dbscan/output",
    sagemaker_session=sess,
)
dbscan.set_hyperparameters(minPts=5)
dbscan.fit({"train": pca_transformer.output_path})

# %% [markdown]
# ## 8. Batch prediction DBSCAN
# Cluster the held-out items from their PCA projections. `SingleRecord`: each line of
# PCA's output already holds a whole mini-batch.

# %%
dbscan_transformer = dbscan.transformer(
    instance_count=1,
    instance_type="ml.m4.xlarge",
    strategy="SingleRecord",
    assemble_with="Line",
    output_path=f"{bucket_url}/{prefix}/dbscan/transform",
)
dbscan_transformer.transform(
    pca_test_transformer.output_path, content_type="application/jsonlines", split_type="Line"
)
dbscan_transformer.wait()

# %% [markdown]
# ## 9. Evaluation
# Each cluster's held-out items and the planted taste most of them came from.

# %%
clustered = read_output("dbscan/transform", "test.csv.out.out")
labels = [int(float(label)) for line in clustered.split() for label in line.split(",")]
clusters: dict[int, list[int]] = {}
for item, label in zip(data.test_items, labels, strict=True):
    clusters.setdefault(label, []).append(int(item))
for label, members in sorted(clusters.items()):
    planted = np.bincount(data.item_cluster[members]).argmax()
    name = "noise" if label == -1 else f"cluster {label}"
    print(f"{name}: {len(members)} items; most from planted taste {planted}")
sess.close()
