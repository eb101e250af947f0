"""Serves a web_app directory with the headers the page needs (standard library only).

Usage: ``serve.py APP_DIR [PORT]`` (``bazel run //web:serve [-- PORT]``), on
127.0.0.1 only. Each response carries:

- ``Cross-Origin-Opener-Policy: same-origin`` and
  ``Cross-Origin-Embedder-Policy: require-corp``: the page is then
  cross-origin isolated (``self.crossOriginIsolated``), which is what lets a
  browser hand it ``SharedArrayBuffer``, and so what TF.js's wasm backend needs
  to run its multi-threaded SIMD binary instead of the single-threaded one;
- ``Cross-Origin-Resource-Policy: same-origin``, so the files themselves may be
  embedded by such a page (and by no other origin's);
- ``Content-Type: application/wasm`` for ``.wasm`` (browsers compile those
  with ``WebAssembly.instantiateStreaming`` only under that type);
- ``Cache-Control: public, max-age=31536000, immutable`` for weight shards
  whose name carries a content hash (``group1-shard1of4.<16 hex>.bin``, from
  ``tfjs_model(content_hash = True)``): a new build writes new names, so a
  cached shard never goes stale; ``no-cache`` (revalidate) for everything else.

The same headers, in nginx::

    add_header Cross-Origin-Opener-Policy same-origin always;
    add_header Cross-Origin-Embedder-Policy require-corp always;
    add_header Cross-Origin-Resource-Policy same-origin always;
    location ~ "\\.[0-9a-f]{16}\\.bin$" { add_header Cache-Control "public, max-age=31536000, immutable"; ... }
"""

import functools
import re
import sys
from http import server
from typing import Sequence

HASHED_SHARD = re.compile(r"\.[0-9a-f]{16}\.bin$")
IMMUTABLE = "public, max-age=31536000, immutable"
ISOLATION_HEADERS = (
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Embedder-Policy", "require-corp"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)


class AppHandler(server.SimpleHTTPRequestHandler):
    """Static files from ``directory`` with the isolation and caching headers."""

    extensions_map = dict(server.SimpleHTTPRequestHandler.extensions_map, **{
        ".wasm": "application/wasm",
        ".js": "text/javascript",
        ".json": "application/json",
        ".bin": "application/octet-stream",
    })

    def end_headers(self):
        for name, value in ISOLATION_HEADERS:
            self.send_header(name, value)
        path = self.path.split("?", 1)[0]
        self.send_header("Cache-Control", IMMUTABLE if HASHED_SHARD.search(path) else "no-cache")
        super().end_headers()

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        sys.stderr.write("serve: %s\n" % (format % args))


def make_server(app_dir: str, port: int = 0, handler=AppHandler) -> server.ThreadingHTTPServer:
    """A server for ``app_dir`` on 127.0.0.1:``port`` (0: an ephemeral port), not started."""
    return server.ThreadingHTTPServer(("127.0.0.1", port),
                                      functools.partial(handler, directory=app_dir))


def main(argv: Sequence[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print("usage: serve.py APP_DIR [PORT]", file=sys.stderr)
        return 2
    port = int(argv[1]) if len(argv) == 2 else 8000
    httpd = make_server(argv[0], port)
    print("serving %s at http://127.0.0.1:%d/ (Ctrl-C stops)" % (argv[0], httpd.server_port))
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
