"""Is a buffered HTTP/1.x request complete enough to hand to a worker thread? (pure, no I/O)

The web worker (``config/gunicorn_gthread.py``) reads each request into memory on its event
loop and commits a thread only once this module says the request is *ready*: its headers and
its whole body have arrived, or waiting longer is pointless because the request is already
known to be refused (a malformed or oversized one: the thread answers it at once, without
reading more). Nothing here validates the request: gunicorn's parser and the app still do
that; a wrong "ready" only costs one blocking read on a socket with a timeout.
"""

from __future__ import annotations

# gunicorn refuses request lines above 4094 bytes and header fields above 8190 bytes, 100 of them.
MAX_HEAD_BYTES = 64 * 1024


def request_ready(data: bytes | bytearray, max_body: int) -> bool:
    """True when ``data`` (bytes received so far) holds a whole request, or one to refuse."""
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return len(data) > MAX_HEAD_BYTES
    head = bytes(data[:head_end]).lower()
    body = memoryview(data)[head_end + 4 :]
    lengths: list[bytes] = []
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        name = name.strip()
        if name == b"content-length":
            lengths.append(value.strip())
        elif name == b"transfer-encoding":
            chunked = True  # gunicorn refuses any coding but chunked; either way the body is chunked
    if chunked:
        return _chunked_ready(body, max_body)
    if not lengths:
        return True  # no body
    try:
        length = int(lengths[0])
    except ValueError:
        return True  # gunicorn answers 400
    if len(set(lengths)) > 1 or length < 0 or length > max_body:
        return True  # refused from the headers alone
    return len(body) >= length


def _chunked_ready(body: memoryview, max_body: int) -> bool:
    pos = 0
    size_total = 0
    raw = body.tobytes()
    while True:
        line_end = raw.find(b"\r\n", pos)
        if line_end < 0:
            return len(raw) - pos > 1024  # a chunk-size line is short: longer is malformed
        size_text = raw[pos:line_end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return True  # bad chunk size: refused at once
        if size < 0 or not size_text.isalnum():
            return True
        pos = line_end + 2
        if size == 0:
            # Trailer fields (usually none), then an empty line.
            return raw.startswith(b"\r\n", pos) or raw.find(b"\r\n\r\n", pos - 2) >= 0
        size_total += size
        if size_total > max_body:
            return True  # over the limit: the app answers 413 without reading the rest
        if len(raw) < pos + size + 2:
            return False
        if raw[pos + size : pos + size + 2] != b"\r\n":
            return True  # missing chunk terminator: refused at once
        pos += size + 2
