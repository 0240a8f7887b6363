"""Key change (whamsah_tray/separation/key_shift.py): pitch, quality, transients and CPU, measured.

    OMP_NUM_THREADS=1 python bench/bench_key.py [--keys -6,...,6] [--seconds 10] [--json FILE] [--listen DIR]

Prints, per key n (semitones):
- pitch: the error in cents of a band-limited sawtooth (110, 220, 440, 880 Hz, 2 s) shifted by n,
  against f0 * 2^(n/12) (FFT peak of the fundamental, parabolic interpolation), the worst of the
  four; the same for librosa.effects.pitch_shift;
- quality: the log-mel distance (dB, mean |difference| of 128-band log-mel spectra after matching
  the RMS, floor 80 dB under the reference's peak) between librosa.effects.pitch_shift (the offline reference: phase
  vocoder time stretch + resampling) and ours, and between it and a naive bin shift (each bin k
  moved to round(k * ratio), phases untouched); and the round trip (+n then -n, back to the
  original: a reference that is the truth) for ours, librosa and the naive shift; on a 10 s
  excerpt of a shared instrumental and a musdb7/test accompaniment (skipped without ../shared/data);
- transients: on a drum-and-bass excerpt, the onset spread (ms): per onset of the original, the
  time from where the high-passed (> 1 kHz) envelope last lies under 10 % of its peak to that
  peak, median over the onsets, for the original and each shift;
- CPU: the separator's cost per hop (512 samples, one thread, whamsah-rt from weights/, stereo
  music) at key 0 and at +-3, median over the excerpt, and the added share.

"Ours" is the live path: StreamingSeparator with the identity model (its vocals are the shifted
mixture; any spectral model's vocals + instrumental are the same signal), through separate_array
so its latency is removed. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a source checkout
sys.path.insert(0, str(REPO / "tests"))  # the pitch measurement the key-change tests use

from whamsah_tray.separation import (
    StreamingSeparator,
    create_untrained_model,
    load_model,
    separate_array,
)
from whamsah_tray.separation.key_shift import key_ratio
from pitch import cents, measured_pitch, sawtooth  # noqa: E402

SR = 44100
DATA = REPO.parent / "shared" / "data"
EXCERPTS = {
    "instrumental (Vibe Ace)": (DATA / "instrumentals" / "Kevin_MacLeod_-_Vibe_Ace.ogg", 30.0),
    "musdb7/test accompaniment (Zeno - Signs)": (DATA / "musdb7" / "test" / "Zeno - Signs" / "accompaniment.ogg", 0.0),
}
DRUMS = (DATA / "instrumentals" / "admiralbob77_-_Choice_-_Drum-bass.ogg", 5.0)
IDENTITY = create_untrained_model("identity")


def shift_ours(audio: np.ndarray, n: int) -> np.ndarray:
    """(frames,) or (frames, channels) -> the same, shifted by n semitones through the separator."""
    vocals, instrumental = separate_array(audio, SR, IDENTITY, key=n)
    out = vocals + instrumental
    return out[:, 0] if audio.ndim == 1 else out


def shift_librosa(audio: np.ndarray, n: int) -> np.ndarray:
    import librosa

    return librosa.effects.pitch_shift(np.ascontiguousarray(audio.T), sr=SR, n_steps=n).T.astype(np.float32)


def shift_naive(audio: np.ndarray, n: int, n_fft: int = 2048, hop: int = 512) -> np.ndarray:
    """Each STFT bin k moved to round(k * ratio), magnitude and phase as they are (sqrt-Hann
    frames, overlap-add); the output is aligned with the input."""
    x = audio[:, None] if audio.ndim == 1 else audio
    frames_total = len(x)
    padded = np.concatenate([np.zeros((n_fft, x.shape[1]), np.float32), x, np.zeros((n_fft, x.shape[1]), np.float32)]).T
    window = np.sqrt(np.hanning(n_fft + 1)[:n_fft]).astype(np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[:, ::hop]
    spec = np.fft.rfft(frames * window, axis=-1)
    bins = spec.shape[-1]
    target = np.rint(np.arange(bins) * key_ratio(n)).astype(int)
    keep = target < bins
    shifted = np.zeros_like(spec)
    np.add.at(shifted, (slice(None), slice(None), target[keep]), spec[..., keep])
    out_frames = np.fft.irfft(shifted, n=n_fft, axis=-1) * window / (window**2).reshape(-1, hop).sum(0).mean()
    out = np.zeros_like(padded)
    for k in range(out_frames.shape[1]):
        out[:, k * hop:k * hop + n_fft] += out_frames[:, k]
    out = out[:, n_fft:n_fft + frames_total].T.astype(np.float32)
    return out[:, 0] if audio.ndim == 1 else out


METHODS = {"ours": shift_ours, "librosa": shift_librosa, "naive": shift_naive}


def log_mel(audio: np.ndarray) -> np.ndarray:
    import librosa

    mono = audio if audio.ndim == 1 else audio.mean(axis=1)
    mel = librosa.feature.melspectrogram(y=mono, sr=SR, n_fft=2048, hop_length=512, n_mels=128)
    return 10 * np.log10(np.maximum(mel, 1e-12))


def log_mel_distance(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Mean |difference| (dB) of the log-mel spectra, the estimate first scaled to the reference's
    RMS (the level is the user's to set; librosa's unlocked phase vocoder loses ~4 dB of it), both
    floored 80 dB under the reference's peak."""
    estimate = estimate * np.sqrt(np.mean(reference**2) / max(float(np.mean(estimate**2)), 1e-20))
    a, b = log_mel(estimate), log_mel(reference)
    floor = b.max() - 80
    frames = min(a.shape[1], b.shape[1])
    return float(np.mean(np.abs(np.maximum(a[:, :frames], floor) - np.maximum(b[:, :frames], floor))))


def read_excerpt(path: Path, start: float, seconds: float) -> np.ndarray:
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        f.seek(int(start * f.samplerate))
        audio = f.read(int(seconds * f.samplerate), dtype="float32", always_2d=True)
        assert f.samplerate == SR
    return audio


def onset_spread(audio: np.ndarray, onsets: np.ndarray) -> float:
    """Median over onsets of the time (ms) from where the > 1 kHz envelope last lies under 10 % of
    its peak (within 60 ms after the onset) to that peak."""
    from scipy.signal import butter, sosfiltfilt

    mono = audio.mean(axis=1) if audio.ndim == 2 else audio
    high = sosfiltfilt(butter(4, 1000, "highpass", fs=SR, output="sos"), mono)
    step, width = 32, 128
    power = np.convolve(high**2, np.ones(width) / width, mode="same")[::step]
    envelope = np.sqrt(power)
    spreads = []
    for onset in onsets // step:
        lo, hi = max(onset - int(0.06 * SR / step), 0), onset + int(0.06 * SR / step)
        peak = lo + int(np.argmax(envelope[lo:hi]))
        below = np.flatnonzero(envelope[max(peak - int(0.1 * SR / step), 0):peak] < 0.1 * envelope[peak])
        if len(below):
            spreads.append((len(envelope[max(peak - int(0.1 * SR / step), 0):peak]) - below[-1]) * step / SR * 1000)
    return float(np.median(spreads))


def cpu_per_hop(audio: np.ndarray, keys=(0, 3, -3), repeats: int = 2) -> dict[str, float]:
    """Median seconds per hop of StreamingSeparator.process, one hop per call, whamsah-rt."""
    model = load_model("whamsah-rt")
    result: dict[int, list[float]] = {key: [] for key in keys}
    for _ in range(repeats):
        for key in keys:
            separator = StreamingSeparator(model, audio.shape[1])
            separator.set_key(key)
            hop = separator.hop
            times = []
            for i in range(len(audio) // hop):
                start = time.perf_counter()
                separator.process(audio[i * hop:(i + 1) * hop])
                times.append(time.perf_counter() - start)
            result[key].append(float(np.median(times[20:])))
    return {str(key): min(values) for key, values in result.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", default=",".join(str(n) for n in range(-6, 7)))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--listen", type=Path, help="write the first excerpt at -3 and +3 (ours, librosa) here")
    args = parser.parse_args(argv)
    keys = [int(n) for n in args.keys.split(",")]
    report: dict = {"keys": keys}

    print("pitch error (cents), worst of sawtooth f0 = 110, 220, 440, 880 Hz")
    report["pitch_cents"] = {}
    for method in ("ours", "librosa"):
        row = []
        for n in keys:
            worst = 0.0
            for f0 in (110.0, 220.0, 440.0, 880.0):
                y = METHODS[method](sawtooth(f0), n)[4096:-4096]
                target = f0 * key_ratio(n)
                worst = max(worst, abs(cents(measured_pitch(y, target), target)))
            row.append(worst)
        report["pitch_cents"][method] = row
        print(f"  {method:8s}" + " ".join(f"{n:+d}:{c:.3f}" for n, c in zip(keys, row)))

    have_data = DATA.is_dir()
    if not have_data:
        print(f"skipped the music figures: {DATA} is absent")
    else:
        report["log_mel_db"] = {}
        for name, (path, start) in EXCERPTS.items():
            audio = read_excerpt(path, start, min(args.seconds, 6.8) if "musdb" in name else args.seconds)
            figures = {"to_librosa": {"ours": [], "naive": []}, "round_trip": {m: [] for m in METHODS}}
            for n in keys:
                if n == 0:
                    for table in figures.values():
                        for column in table.values():
                            column.append(0.0)
                    continue
                reference = shift_librosa(audio, n)
                shifted = {m: (reference if m == "librosa" else shift(audio, n)) for m, shift in METHODS.items()}
                for m in ("ours", "naive"):
                    figures["to_librosa"][m].append(log_mel_distance(shifted[m], reference))
                for m, shift in METHODS.items():
                    figures["round_trip"][m].append(log_mel_distance(shift(shifted[m], -n), audio))
            report["log_mel_db"][name] = figures
            print(f"log-mel distance (dB), {name}, {len(audio) / SR:.1f} s")
            for table, columns in figures.items():
                for m, row in columns.items():
                    print(f"  {table:10s} {m:8s}" + " ".join(f"{n:+d}:{d:.2f}" for n, d in zip(keys, row)))
            if args.listen and name == next(iter(EXCERPTS)):
                import soundfile as sf

                args.listen.mkdir(parents=True, exist_ok=True)
                sf.write(args.listen / "original.wav", audio, SR)
                for n in (-3, 3):
                    sf.write(args.listen / f"ours{n:+d}.wav", shift_ours(audio, n), SR)
                    sf.write(args.listen / f"librosa{n:+d}.wav", shift_librosa(audio, n), SR)
                print(f"  wrote {args.listen}/original.wav, ours-3.wav, ours+3.wav, librosa-3.wav, librosa+3.wav")

        import librosa

        drums = read_excerpt(*DRUMS, args.seconds)
        onsets = librosa.onset.onset_detect(y=drums.mean(axis=1), sr=SR, units="samples")
        report["onset_spread_ms"] = {"original": onset_spread(drums, onsets)}
        print(f"onset spread (ms, median of {len(onsets)} onsets), drum-and-bass excerpt: "
              f"original {report['onset_spread_ms']['original']:.1f}")
        for m, shift in METHODS.items():
            row = [onset_spread(shift(drums, n), onsets) if n else report["onset_spread_ms"]["original"]
                   for n in keys]
            report["onset_spread_ms"][m] = row
            print(f"  {m:8s}" + " ".join(f"{n:+d}:{s:.1f}" for n, s in zip(keys, row)))

    if (REPO / "weights" / "whamsah-rt.pt").exists():
        music = read_excerpt(*EXCERPTS["musdb7/test accompaniment (Zeno - Signs)"], 6.8) if have_data else \
            (np.random.default_rng(0).standard_normal((int(6.8 * SR), 2)) * 0.1).astype(np.float32)
        per_hop = cpu_per_hop(music)
        base = per_hop["0"]
        report["cpu_per_hop_s"] = per_hop
        print("CPU per hop (whamsah-rt, stereo, one thread): "
              + ", ".join(f"key {k}: {v * 1e6:.0f} us" for k, v in per_hop.items())
              + "; added " + ", ".join(f"{k}: {100 * (v / base - 1):+.0f} %" for k, v in per_hop.items() if k != "0"))
        report["latency_ms"] = latency_through_the_live_separator()
        print("latency through the live path's separator (whamsah-rt, hop-sized blocks as the engine feeds it; "
              "onsets of noise bursts at 50 % of their level, median): "
              + ", ".join(f"key {k}: {v:.1f} ms" for k, v in report["latency_ms"].items()))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


def latency_through_the_live_separator(keys=(0, -2, 3)) -> dict[str, float]:
    """Input-to-output delay of sharp noise bursts through StreamingSeparator(whamsah-rt), fed a hop
    at a time as the engine's worker does, at 100 % / 100 % (vocals + instrumental): the key change
    must add nothing to the engine's latency (the devices' buffers are the same with any key)."""
    rng = np.random.default_rng(1)
    seconds, period = 6.0, int(0.5 * SR)
    audio = np.zeros((int(seconds * SR), 2), np.float32)
    starts = np.arange(period, len(audio) - period, period)
    for start in starts:
        burst = rng.standard_normal((int(0.08 * SR), 2)) * np.exp(-np.arange(int(0.08 * SR)) / (0.02 * SR))[:, None]
        audio[start:start + len(burst)] = 0.3 * burst

    def onsets(y: np.ndarray) -> np.ndarray:
        envelope = np.convolve(np.abs(y.mean(axis=1)), np.ones(32) / 32, mode="same")
        found = []
        for start in starts:
            window = envelope[start:start + period // 2]
            found.append(start + int(np.argmax(window >= 0.5 * window.max())))
        return np.array(found)

    reference = onsets(audio)
    model = load_model("whamsah-rt")
    result = {}
    for key in keys:
        separator = StreamingSeparator(model, 2)
        separator.set_key(key)
        pieces = [sum(separator.process(audio[i:i + separator.hop]))
                  for i in range(0, len(audio) - separator.hop + 1, separator.hop)]
        out = np.concatenate(pieces)
        result[str(key)] = float(np.median(onsets(np.pad(out, ((0, len(audio) - len(out)), (0, 0)))) - reference)
                                 / SR * 1000)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
