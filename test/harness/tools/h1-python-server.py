# Python's http.server behind the sidecar: SimpleHTTPRequestHandler over keep-alive HTTP/1.1,
# whose do_GET ignores a request body (so a GET body is read as the next request), plus a do_POST
# that answers without reading the body, as careless apps do. Every request line it runs is
# logged on stdout: seen python "REQUEST LINE" host=HOST
# Usage: h1-python-server.py HOST PORT ROOT
import functools
import http.server
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_request(self, code="-", size="-"):
        print(f'seen python "{self.requestline}" host={self.headers.get("Host", "")}', flush=True)

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        self.log_request()
        body = b"posted\n"
        self.send_response_only(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


host, port, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
server = http.server.ThreadingHTTPServer((host, port), functools.partial(Handler, directory=root))
print("listening", flush=True)
server.serve_forever()
