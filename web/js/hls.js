// Live video over HLS, for viewers past the server's WebRTC tier: hls.js from web/vendor
// (loaded only then) wherever Media Source Extensions exist, as its live-edge settings are the
// ones measured; else the browser's own HLS (Safari on an iPhone). A few seconds behind WebRTC,
// and carried by any HTTP cache or CDN in front of the server.

const HLS_JS = "/static/vendor/hls.js/hls.light.min.mjs";

// The show's live playlist, when the server records it; false when there is none (yet).
export async function hlsAvailable(showId) {
  try {
    const response = await fetch(hlsUrl(showId), { method: "HEAD", cache: "no-store" });
    return response.ok;
  } catch {
    return false;
  }
}

export function hlsUrl(showId) {
  return `/hls/${encodeURIComponent(showId)}/index.m3u8`;
}

// Play `url` in `video`; returns {stop()}. `onFatal(reason)`: playback broke for good.
export async function playHls(video, url, { onFatal = () => {} } = {}) {
  const mse = "MediaSource" in window || "ManagedMediaSource" in window;
  if (!mse && video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = url;
    video.play().catch(() => {});
    const failed = () => onFatal("the browser could not play the playlist");
    video.addEventListener("error", failed, { once: true });
    return {
      stop() {
        video.removeEventListener("error", failed);
        video.removeAttribute("src");
        video.load();
      },
    };
  }
  const { default: Hls } = await import(HLS_JS);
  if (!Hls.isSupported()) throw new Error("this browser cannot play HLS");
  // No worker: the pages' Content-Security-Policy allows no blob: scripts.
  // Two of the recorder's ~2 s segments behind the live edge (the target duration the
  // playlist announces is a ceiling of 4 s or more, too coarse a unit for the delay).
  const hls = new Hls({ enableWorker: false, lowLatencyMode: true, liveSyncDuration: 4 });
  hls.on(Hls.Events.ERROR, (event, data) => {
    if (!data.fatal) return;
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
    else onFatal(data.details || data.type);
  });
  hls.loadSource(url);
  hls.attachMedia(video);
  video.play().catch(() => {});
  return {
    stop() {
      hls.destroy();
    },
  };
}
