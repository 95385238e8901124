"""A per-viewer-encoding WHEP sender, the baseline that scripts/bench
compares babymon with: aiortc encodes the same synthetic picture and tone
once for every viewer, as a naive sender would.

    python3 aiortc_sender.py --port 8090 --width 1280 --height 720 --fps 30
"""

import argparse
import asyncio
import fractions
import math
import uuid

import av
from aiohttp import web
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

VIDEO_CLOCK = 90000


class PatternTrack(VideoStreamTrack):
    """Cycles through a second of frames made once at start: the cost
    measured is encoding and sending, not drawing."""

    def __init__(self, frames, fps):
        super().__init__()
        self.frames = frames
        self.fps = fps
        self.n = 0
        self.start = None

    async def recv(self):
        loop = asyncio.get_running_loop()
        if self.start is None:
            self.start = loop.time()
        due = self.start + self.n / self.fps
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = self.frames[self.n % len(self.frames)]
        out = frame.reformat()  # a fresh frame object each time
        out.pts = int(self.n * VIDEO_CLOCK / self.fps)
        out.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.n += 1
        return out


class ToneTrack(AudioStreamTrack):
    """A quiet 440 Hz tone in 20 ms frames."""

    def __init__(self):
        super().__init__()
        self.rate = 48000
        self.samples = 960
        self.n = 0
        self.start = None
        period = []
        for i in range(self.samples):
            v = int(1000 * math.sin(2 * math.pi * 440 * i / self.rate))
            period.append(v.to_bytes(2, "little", signed=True))
        self.payload = b"".join(period)

    async def recv(self):
        loop = asyncio.get_running_loop()
        if self.start is None:
            self.start = loop.time()
        due = self.start + self.n * self.samples / self.rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = av.AudioFrame(format="s16", layout="mono", samples=self.samples)
        frame.planes[0].update(self.payload)
        frame.sample_rate = self.rate
        frame.pts = self.n * self.samples
        frame.time_base = fractions.Fraction(1, self.rate)
        self.n += 1
        return frame


def make_frames(width, height, fps):
    frames = []
    for i in range(fps):
        img = av.VideoFrame(width, height, "yuv420p")
        y = bytearray(width * height)
        bar = (i * width // fps) % width
        for row in range(0, height, 8):
            start = row * width
            y[start + bar : start + min(bar + 64, width)] = b"\xeb" * (
                min(bar + 64, width) - bar
            )
        img.planes[0].update(bytes(y))
        img.planes[1].update(bytes([128]) * (width * height // 4))
        img.planes[2].update(bytes([128]) * (width * height // 4))
        frames.append(img)
    return frames


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=30)
    args = parser.parse_args()

    frames = make_frames(args.width, args.height, args.fps)
    sessions = {}

    async def page(_request):
        return web.Response(text="<!doctype html><title>baseline</title>",
                            content_type="text/html")

    async def whep(request):
        offer = RTCSessionDescription(sdp=await request.text(), type="offer")
        pc = RTCPeerConnection()
        await pc.setRemoteDescription(offer)
        pc.addTrack(PatternTrack(frames, args.fps))
        pc.addTrack(ToneTrack())
        caps = RTCRtpSender.getCapabilities("video").codecs
        for t in pc.getTransceivers():
            if t.kind == "video":
                t.setCodecPreferences([c for c in caps if c.mimeType == "video/H264"])
        await pc.setLocalDescription(await pc.createAnswer())
        sid = uuid.uuid4().hex
        sessions[sid] = pc
        return web.Response(status=201, text=pc.localDescription.sdp,
                            content_type="application/sdp",
                            headers={"Location": f"/whep/{sid}"})

    async def delete(request):
        pc = sessions.pop(request.match_info["sid"], None)
        if pc is None:
            return web.Response(status=404)
        await pc.close()
        return web.Response(status=200)

    app = web.Application()
    app.add_routes([web.get("/", page), web.post("/whep", whep),
                    web.delete("/whep/{sid}", delete)])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port).start()
    print(f"listening on http://{args.host}:{args.port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
