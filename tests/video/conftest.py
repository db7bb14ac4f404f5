"""Fixtures for video tests: the clip, a gallery of its two people, an RTSP server."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspServer:
    """A camera on RTSP: a local ``ffmpeg`` process streams the clip in real time (looping) as
    RTP, and a small RTSP front end hands those RTP packets to clients interleaved in their
    RTSP connection (RTP/AVP/TCP, as cameras do behind NAT). ffmpeg has no RTSP server of its
    own (its RTSP muxer only publishes), so the front end plays the part of the camera's RTSP
    service: OPTIONS, DESCRIBE (ffmpeg's SDP), SETUP, PLAY, TEARDOWN.

    ``kill`` is the camera dropping off the network (ffmpeg killed, every connection cut);
    ``start`` brings it back on the same address.
    """

    def __init__(self, clip: Path) -> None:
        self.clip = clip
        self.port = free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/live"
        self.proc: subprocess.Popen[bytes] | None = None
        self._listener: socket.socket | None = None
        self._rtp: socket.socket | None = None
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()
        self._sdp = ""
        self._up = False

    def start(self) -> None:
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            pytest.fail("ffmpeg is not installed (scripts/system-deps.sh installs it)")
        self._rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._rtp.bind(("127.0.0.1", 0))
        rtp_port = self._rtp.getsockname()[1]
        with tempfile.TemporaryDirectory() as tmp:
            sdp = Path(tmp) / "stream.sdp"
            self.proc = subprocess.Popen(
                [
                    ffmpeg,
                    "-v",
                    "error",
                    "-re",
                    "-stream_loop",
                    "-1",
                    "-i",
                    str(self.clip),
                    "-an",
                    "-c:v",
                    "copy",
                    "-f",
                    "rtp",
                    "-sdp_file",
                    str(sdp),
                    f"rtp://127.0.0.1:{rtp_port}?rtcpport={rtp_port + 1}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.time() + 20
            while not (sdp.exists() and sdp.stat().st_size) and time.time() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError("ffmpeg could not stream the clip")
                time.sleep(0.05)
            time.sleep(0.1)
            text = sdp.read_text()
        lines = [ln for ln in text.splitlines() if ln and not ln.startswith("SDP:")]
        self._sdp = "\r\n".join([*lines, "a=control:track0"]) + "\r\n"
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(4)
        self._up = True
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()
        threading.Thread(target=self._forward, args=(self._rtp,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while self._up:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        try:
            while self._up:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(4096)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode(errors="replace").split("\r\n")
                method = lines[0].split(" ")[0]
                fields = dict(ln.split(": ", 1) for ln in lines[1:] if ": " in ln)
                cseq = fields.get("CSeq", "0")
                extra, body = "", ""
                if method == "OPTIONS":
                    extra = "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n"
                elif method == "DESCRIBE":
                    body = self._sdp
                    extra = (
                        f"Content-Base: {self.url}/\r\nContent-Type: application/sdp\r\n"
                        f"Content-Length: {len(body)}\r\n"
                    )
                elif method == "SETUP":
                    extra = (
                        "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"
                        "Session: 4242;timeout=60\r\n"
                    )
                elif method in ("PLAY", "GET_PARAMETER"):
                    extra = "Session: 4242\r\n"
                elif method == "TEARDOWN":
                    conn.sendall(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\r\n".encode())
                    return
                else:
                    conn.sendall(f"RTSP/1.0 501 Not Implemented\r\nCSeq: {cseq}\r\n\r\n".encode())
                    continue
                with self._lock:
                    conn.sendall(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}\r\n{body}".encode())
                    if method == "PLAY":
                        self._clients.append(conn)
        except OSError:
            return
        finally:
            with self._lock:
                if conn not in self._clients:  # a playing client is closed by kill()
                    conn.close()

    def _forward(self, rtp: socket.socket) -> None:
        while self._up:
            try:
                packet = rtp.recv(65536)
            except OSError:
                return
            frame = b"$\x00" + len(packet).to_bytes(2, "big") + packet
            with self._lock:
                for c in list(self._clients):
                    try:
                        c.sendall(frame)
                    except OSError:
                        self._clients.remove(c)
                        c.close()  # the client went away: nothing left open for the GC

    def kill(self) -> None:
        """The camera drops: ffmpeg killed, the RTSP service gone, connections cut."""
        self._up = False
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None
        with self._lock:
            for s in [self._listener, self._rtp, *self._clients]:
                if s is not None:
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)
                    s.close()
            self._clients.clear()
        self._listener = self._rtp = None

    def stop(self) -> None:
        self.kill()


@pytest.fixture
def rtsp(clip: Path) -> Iterator[RtspServer]:
    server = RtspServer(clip)
    server.start()
    yield server
    server.stop()
