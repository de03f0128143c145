"""CRC32C of a concatenation from the CRC32Cs of its pieces, without their bytes.

An output assembled from answers the engine never reads (spooled answers, parts of a
split object) still gets the checksum of its whole bytes for the ledger. This is zlib's
crc32_combine (x^(8·len2) mod P applied to the first CRC) for the Castagnoli
polynomial: a few hundred integer operations per piece, whatever its size.
"""

from __future__ import annotations

_POLY = 0x82F63B78  # CRC-32C, bit-reflected


def _multiply(a: int, b: int) -> int:
    """a(x)·b(x) modulo P(x), bit-reflected; `a` must not be 0."""
    bit = 1 << 31
    product = 0
    while True:
        if a & bit:
            product ^= b
            if not a & (bit - 1):
                return product
        bit >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


def _powers() -> list[int]:
    """x^(2^k) mod P for k = 0..31 (x^1 is bit 30 in reflected order)."""
    table = [1 << 30]
    for _ in range(31):
        table.append(_multiply(table[-1], table[-1]))
    return table


_X_TO_2K = _powers()


def _x_to_8n(length: int) -> int:
    """x^(8·length) mod P: the shift a CRC undergoes over `length` more bytes."""
    power = 1 << 31  # x^0
    k = 3  # 8·length = length·2^3
    while length:
        if length & 1:
            power = _multiply(_X_TO_2K[k & 31], power)
        length >>= 1
        k += 1
    return power


def crc32c_combine(first: int, second: int, second_length: int) -> int:
    """CRC32C of A+B from CRC32C(A), CRC32C(B) and len(B)."""
    if not second_length:
        return first
    return _multiply(_x_to_8n(second_length), first) ^ second
