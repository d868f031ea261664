// WHIP (RFC 9725) publishing and WHEP playback: gather ICE, then POST the SDP offer.

import { ApiError, readResponse } from "./api.js";

async function gathered(pc, timeoutMs = 3000) {
  if (pc.iceGatheringState === "complete") return;
  await new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", done);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeoutMs);
  });
}

async function negotiate(pc, url, token) {
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const headers = { "Content-Type": "application/sdp" };
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(url, { method: "POST", headers, body: pc.localDescription.sdp });
  } catch {
    throw new ApiError(0, { detail: "The video server cannot be reached." });
  }
  if (response.status !== 201) await readResponse(response); // throws the problem
  const answer = await response.text();
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
  return new URL(response.headers.get("Location"), location.href).toString();
}

class Session {
  constructor(pc, resource, token) {
    this.pc = pc;
    this.resource = resource;
    this.token = token;
  }

  async stop() {
    this.pc.close();
    if (!this.resource) return;
    const headers = this.token ? { Authorization: `Bearer ${this.token}` } : {};
    try {
      await fetch(this.resource, { method: "DELETE", headers, keepalive: true });
    } catch {
      // the server ends sessions whose peer is gone on its own
    }
  }
}

// Publish `stream` to the show as its host.
export async function publish(showId, token, stream) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  for (const track of stream.getTracks()) {
    pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
  }
  try {
    const resource = await negotiate(pc, `/whip/${encodeURIComponent(showId)}`, token);
    return new Session(pc, resource, token);
  } catch (err) {
    pc.close();
    throw err;
  }
}

// Play the show into `video`; resolves once the answer is applied.
export async function play(showId, video) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const stream = new MediaStream();
  pc.addEventListener("track", (event) => {
    stream.addTrack(event.track);
    if (video.srcObject !== stream) video.srcObject = stream;
  });
  try {
    const resource = await negotiate(pc, `/whep/${encodeURIComponent(showId)}`);
    return new Session(pc, resource, null);
  } catch (err) {
    pc.close();
    throw err;
  }
}
