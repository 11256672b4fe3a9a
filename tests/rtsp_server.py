"""A real RTSP server for tests: gst-rtsp-server, run as a subprocess of Debian's /usr/bin/python3.

gst-rtsp-server's Python bindings (python3-gi + gir1.2-gst-rtsp-server-1.0) import only in the system
interpreter, not in the project's virtualenv, so `RtspServer` (stdlib only, imported by the tests) starts this
same file under /usr/bin/python3, where `_serve()` runs the GStreamer main loop. The server can be killed
(SIGKILL), frozen (SIGSTOP) and thawed (SIGCONT), and restarted on the same port, like a real camera.

Debian packages: python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-{base,good,ugly,bad} (.ci/run).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
_READY = "RTSP-SERVER-READY"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_self_signed_pem(directory: Path) -> Path:
    """A throw-away certificate + key for 127.0.0.1 (openssl CLI), in one PEM file as GStreamer wants it."""
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    pem = directory / "server.pem"
    pem.write_text(cert.read_text() + key.read_text())
    return pem


def rtsp_server_available() -> bool:
    """True when gst-rtsp-server's bindings import in the system Python (a cheap probe for skip conditions)."""
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class RtspServer:
    """A live H.264 RTSP stream at `url` (rtsp://127.0.0.1:PORT/stream) from a real gst-rtsp-server process.

    The picture is GStreamer's moving test pattern, encoded live with x264 at `fps` (a key frame every second),
    so a client that connects at any time gets a decodable stream quickly. With `user`/`password` set the server
    requires Basic authentication;
    with `tls_pem` (see `make_self_signed_pem`) it serves RTSPS.
    """

    def __init__(
        self,
        port: int | None = None,
        path: str = "/stream",
        width: int = 320,
        height: int = 240,
        fps: int = 30,
        user: str | None = None,
        password: str | None = None,
        tls_pem: str | Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.tls_pem = str(tls_pem) if tls_pem else None  # certificate + key in one PEM file: serve RTSPS
        self.path = path
        self.width, self.height, self.fps = width, height, fps
        self.user, self.password = user, password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def scheme(self) -> str:
        return "rtsps" if self.tls_pem else "rtsp"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{self.path}"

    def url_with_credentials(self, user: str | None = None, password: str | None = None) -> str:
        user = user if user is not None else self.user
        password = password if password is not None else self.password
        return f"{self.scheme}://{user}:{password}@127.0.0.1:{self.port}{self.path}"

    def start(self, timeout: float = 20.0) -> RtspServer:
        cmd = [SYSTEM_PYTHON, __file__, "--port", str(self.port), "--path", self.path,
               "--width", str(self.width), "--height", str(self.height), "--fps", str(self.fps)]  # fmt: skip
        if self.tls_pem:
            cmd += ["--tls-pem", self.tls_pem]
        env = dict(os.environ)
        if self.user is not None:
            env["RTSP_TEST_USER"], env["RTSP_TEST_PASSWORD"] = self.user, self.password or ""
        # Keep the venv's interpreter settings out of the system Python.
        for var in ("PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV"):
            env.pop(var, None)
        self.process = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env
        )
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        os.set_blocking(self.process.stdout.fileno(), False)
        buffer = b""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"RTSP test server exited with {self.process.returncode}: {' '.join(cmd)}")
            chunk = self.process.stdout.read() or b""
            buffer += chunk
            if _READY.encode() in buffer:
                self._wait_listening(deadline)
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"RTSP test server did not start on port {self.port} within {timeout} s")

    def _wait_listening(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"RTSP test server is not listening on port {self.port}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the camera vanishes mid-stream, connections reset without an RTSP TEARDOWN."""
        if self.process is not None:
            if self.process.poll() is None:
                os.kill(self.process.pid, signal.SIGCONT)  # a frozen process must be able to die and be reaped
                self.process.kill()
            self.process.wait(timeout=10)
            if self.process.stdout is not None:
                self.process.stdout.close()

    def freeze(self) -> None:
        """SIGSTOP: the camera hangs; TCP stays open but no data (and no RTSP answer) comes."""
        if self.running:
            os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.running:
            os.kill(self.process.pid, signal.SIGCONT)

    def restart(self, timeout: float = 20.0) -> RtspServer:
        """Kill and start again on the same port (a rebooted camera)."""
        self.kill()
        return self.start(timeout=timeout)

    def stop(self) -> None:
        self.kill()

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _serve(argv: list[str]) -> None:  # runs under /usr/bin/python3 only
    import argparse

    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import Gio, GLib, Gst, GstRtspServer

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/stream")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--tls-pem", default=None, help="certificate + key (PEM): serve RTSPS")
    args = parser.parse_args(argv)

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={args.width},height={args.height},"
        f"framerate={args.fps}/1 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.fps} "
        "bitrate=500 ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(True)
    user = os.environ.get("RTSP_TEST_USER")
    if user is not None or args.tls_pem:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        if user is not None:
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, os.environ.get("RTSP_TEST_PASSWORD", "")), token)
        else:
            auth.set_default_token(token)  # TLS only: anonymous clients may play
        if args.tls_pem:
            auth.set_tls_certificate(Gio.TlsCertificate.new_from_file(args.tls_pem))
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_role_from_structure(
            Gst.Structure.new_from_string(
                "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
            )
        )
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on port {args.port}")
    print(_READY, flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    _serve(sys.argv[1:])
