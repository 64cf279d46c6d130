"""A progress bar (tqdm) on stderr for big transfers, only when stderr is a
terminal: pipes and logs stay clean."""
from __future__ import annotations

import sys
from typing import Iterable, Iterator

from tqdm import tqdm

BIG_BYTES = 1024 * 1024


def tracked(chunks: Iterable[bytes], total: int | None, label: str) -> Iterator[bytes]:
    """The same chunks, counted on a bar with speed and time left."""
    if not sys.stderr.isatty() or (total is not None and total < BIG_BYTES):
        yield from chunks
        return
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
              file=sys.stderr, leave=False, dynamic_ncols=True) as bar:
        for chunk in chunks:
            bar.update(len(chunk))
            yield chunk
