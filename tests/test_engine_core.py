"""The engine's real-time core without devices: ring buffer, level ramps, the separation pipeline
(exact reconstruction, integer latency across 48 kHz <-> 44.1 kHz), and the audio callback with the
inference worker driven block by block as PortAudio would (the dry fallback is sample-aligned with
the wet path; a stalled worker means dry output, never silence; nothing escapes the callback).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import torch
import pytest

from whamsah_tray.engine.callback import DRIFT_S, TRIM_MIN, AudioCallback
from whamsah_tray.engine.levels import LevelRamp, clamp_percent
from whamsah_tray.engine.pipeline import DRY_LATENCY_SAMPLES, SeparationPipeline
from whamsah_tray.engine.ring_buffer import SampleRing
from whamsah_tray.engine.worker import InferenceWorker
from whamsah_tray.separation import StreamingSeparator, create_untrained_model

RATE = 44100
BLOCK = 256


def noise(frames: int, seed: int = 0, rate: int = RATE, top_hz: float = 15000.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((frames, 2))
    spectrum = np.fft.rfft(x, axis=0)
    spectrum[np.fft.rfftfreq(frames, 1 / rate) > top_hz] = 0
    return (0.1 * np.fft.irfft(spectrum, frames, axis=0)).astype(np.float32)


@pytest.fixture(scope="module")
def random_model():
    return create_untrained_model("whamsah-rt", seed=0)


def test_ring_buffer_wraps_around():
    ring = SampleRing(100, 2)
    data = np.arange(300, dtype=np.float32).reshape(150, 2)
    ring.write_at(70, data[:60])  # wraps at 100
    out = np.zeros((60, 2), np.float32)
    ring.read_at(70, out)
    np.testing.assert_array_equal(out, data[:60])
    ring.read_at(170, out)  # same slots, one lap later
    np.testing.assert_array_equal(out, data[:60])


def test_levels_ramp_linearly_within_20_ms_and_reach_their_targets():
    levels = LevelRamp(RATE, vocals=100, instrumental=100)
    levels.set(vocals=0, instrumental=150)
    vocal, instrumental = (g.copy() for g in levels.advance(2048))
    ramp_end = int(np.argmax(vocal == 0.0))
    assert 0 < ramp_end <= 0.020 * RATE
    assert np.all(np.diff(vocal[:ramp_end + 1]) < 0)  # monotonic, no steps back
    assert np.max(np.abs(np.diff(vocal))) <= 1.0 / (0.010 * RATE)  # no jump bigger than a 10 ms ramp's
    assert instrumental[-1] == pytest.approx(1.5)
    levels.set(bypass=True)  # bypass: both to 100 %, whatever the levels
    vocal, instrumental = levels.advance(4096)
    assert vocal[-1] == 1.0 and instrumental[-1] == 1.0
    assert levels.vocals_percent == 0.0  # the levels are kept for when bypass ends


def test_level_percentages_are_clamped_and_checked():
    assert clamp_percent(-5) == 0.0 and clamp_percent(400) == 150.0
    with pytest.raises(ValueError):
        clamp_percent(float("nan"))


@pytest.mark.parametrize("device_rate", [44100, 48000])
@pytest.mark.parametrize("use_model", [False, True], ids=["dry", "random-model"])
def test_pipeline_reconstructs_the_input_at_an_integer_latency(device_rate, use_model, random_model):
    separator = StreamingSeparator(random_model, channels=2) if use_model else None
    pipeline = SeparationPipeline(separator, device_rate, 2, LevelRamp(RATE))
    x = noise(device_rate * 2, rate=device_rate)
    sizes = np.random.default_rng(1).integers(1, 700, size=1000)  # varying block sizes
    pieces, start = [], 0
    for size in sizes:
        pieces.append(pipeline.process(x[start:start + size]))
        start += size
        if start >= len(x):
            break
    y = np.concatenate(pieces)
    latency = pipeline.latency_frames
    n = min(len(y) - latency, start - latency)
    if device_rate == RATE:
        expected = random_model.info.latency_samples if use_model else DRY_LATENCY_SAMPLES
        assert latency == expected
        np.testing.assert_allclose(y[latency:latency + n], x[:n], atol=1e-5)
    else:  # 44.1 kHz model latency padded to whole 48 kHz frames; soxr round trip is not exact
        assert latency * RATE % device_rate == 0
        error = y[latency + 2000:latency + n] - x[2000:n]
        assert np.sqrt(np.mean(error ** 2)) < 1e-3 * np.sqrt(np.mean(x ** 2)) * 100  # < -40 dB
        assert np.max(np.abs(error)) < 0.01


class _Engine:
    """Callback + worker + pipeline, driven block by block like PortAudio (no device)."""

    def __init__(self, pipeline: SeparationPipeline, margin: int = 2 * BLOCK + 600) -> None:
        delay = pipeline.latency_frames + margin  # the worker adds the model's measured compute time
        capacity = delay + 20000 + 3 * RATE
        self.wake = threading.Event()
        self.callback = AudioCallback(SampleRing(capacity, 2), SampleRing(capacity, 2), delay, RATE,
                                      16384, self.wake, levels=pipeline.levels)  # as a live session
        self.worker = InferenceWorker(self.callback, pipeline, margin)

    @property
    def delay(self) -> int:
        return self.callback.delay

    def run(self, x: np.ndarray, realtime: bool = True, on_block=None) -> np.ndarray:
        out = np.zeros_like(x)
        self.worker.start()
        started = time.perf_counter()
        try:
            for start in range(0, len(x) - BLOCK + 1, BLOCK):
                if on_block is not None:
                    on_block(start)
                self.callback.duplex(x[start:start + BLOCK], out[start:start + BLOCK], BLOCK, None, None)
                if realtime:
                    time.sleep(max(0.0, started + (start + BLOCK) / RATE - time.perf_counter()))
        finally:
            self.worker.stop()
        return out


def test_callback_and_worker_give_the_input_delayed_by_the_stated_latency(random_model):
    pipeline = SeparationPipeline(StreamingSeparator(random_model, channels=2), RATE, 2, LevelRamp(RATE))
    engine = _Engine(pipeline)
    x = noise(RATE * 3)
    out = engine.run(x)
    usable = (len(x) // BLOCK) * BLOCK
    np.testing.assert_allclose(out[engine.delay:usable], x[:usable - engine.delay], atol=1e-5)
    assert engine.callback.errors == 0


class _CountingPipeline(SeparationPipeline):
    calls = 0

    def process(self, block):
        self.calls += 1
        return super().process(block)


def test_the_worker_runs_the_pipeline_once_per_hop_not_once_per_block(random_model):
    """The worker waits for the input that completes the model's next hop (512 samples; the
    callback's blocks are 256 here, a few ms in a desktop's sound server): calls between two
    hops would only move audio along. The mix still arrives in time: nothing plays dry."""
    levels = LevelRamp(RATE, vocals=0, instrumental=100)  # wet differs from dry
    pipeline = _CountingPipeline(StreamingSeparator(random_model, channels=2), RATE, 2, levels)
    engine = _Engine(pipeline)
    x = noise(RATE * 2)
    engine.run(x)
    hops = len(x) // 512
    assert pipeline.calls <= hops + 10, f"{pipeline.calls} calls for {hops} hops ({len(x) // BLOCK} blocks)"
    assert engine.callback.short_frames == 0 and engine.worker.resyncs == 0


class _StallingPipeline(SeparationPipeline):
    """A pipeline whose model sometimes takes far too long (a stalled worker)."""

    stall_s = 0.0

    def process(self, block):
        if self.stall_s:
            time.sleep(self.stall_s)
            self.stall_s = 0.0
        return super().process(block)


def test_the_model_s_compute_time_is_measured_and_leaves_the_pipeline_as_new(random_model):
    dry = SeparationPipeline(None, RATE, 2, LevelRamp(RATE))
    dry.measure_compute()
    assert dry.compute_frames == 0
    measured = SeparationPipeline(StreamingSeparator(random_model, channels=2), RATE, 2, LevelRamp(RATE))
    measured.measure_compute()
    assert 0 < measured.compute_frames < 0.05 * RATE  # a 512-sample hop of the real-time model
    fresh = SeparationPipeline(StreamingSeparator(random_model, channels=2), RATE, 2, LevelRamp(RATE))
    x = noise(RATE // 2, seed=3)
    np.testing.assert_array_equal(measured.process(x), fresh.process(x))


def test_a_model_s_compute_time_is_measured_once_per_model_channels_and_threads(monkeypatch):
    """A second session with the same loaded model takes the first one's measurement (WHAMSAHNet's
    costs ~1 s before a file starts); other channels or another thread count measure again."""
    model = create_untrained_model("mask-gru", {"hidden": 32, "gru_layers": 1}, seed=4)
    calls = []

    class CountingSeparator(StreamingSeparator):
        def process(self, block):
            calls.append(len(block))
            return super().process(block)

    def measure(channels: int) -> SeparationPipeline:
        pipeline = SeparationPipeline(CountingSeparator(model, channels=channels), RATE, channels, LevelRamp(RATE))
        pipeline.measure_compute()
        return pipeline

    first = measure(2)
    assert calls and first.compute_frames > 0
    calls.clear()
    assert measure(2).compute_frames == first.compute_frames and not calls
    measure(1)
    assert calls
    calls.clear()
    # Another thread count (what the worker sets through separation.threads) measures again.
    import whamsah_tray.engine.pipeline as pipeline_module

    threads = pipeline_module.compute_thread_count()
    monkeypatch.setattr(pipeline_module, "compute_thread_count", lambda: 1 if threads != 1 else 2)
    measure(2)
    assert calls


def test_a_chunked_model_s_compute_time_is_in_the_delay_so_no_hop_plays_dry():
    """WHAMSAHNet runs once per 32768-sample hop (~0.15 s on one core here): its mix of a hop is
    ready that long after the hop's input. Without that time in the delay the first part of every
    hop played dry (measured: 38912 of 197952 frames in 6 s, 20 %).

    The delay holds 2.5x the fastest measured hop; on a busy CI machine one hop once took longer
    than that and one 256-frame block of 5 s played dry (CI of stop 20). So the test allows a
    shortfall of at most 1 % of the frames, which still fails on the fault it guards against."""
    model = create_untrained_model("whamsahnet", seed=0)
    levels = LevelRamp(RATE, vocals=0, instrumental=100)  # wet differs from dry
    pipeline = SeparationPipeline(StreamingSeparator(model, channels=2), RATE, 2, levels)
    engine = _Engine(pipeline)
    x = noise(RATE * 5)
    out = engine.run(x)
    assert engine.worker.failure is None  # a failed pipeline plays dry without counting short frames
    assert engine.callback.short_frames <= 0.01 * len(x), f"{engine.callback.short_frames} frames played dry"
    assert engine.worker.resyncs == 0
    wet_from = engine.delay + 32768
    assert not np.allclose(out[wet_from:], np.concatenate([np.zeros((engine.delay, 2), np.float32), x])[wet_from:len(x)], atol=1e-4)
    assert pipeline.compute_frames > 0.02 * RATE
    assert engine.delay >= pipeline.latency_frames + pipeline.compute_frames


def _stalled_run(random_model, levels: LevelRamp, x: np.ndarray, during=None):
    """x through an engine whose worker stalls 300 ms after 1 s; `during(levels)` runs 100 ms
    into the stall. Returns the output and the engine's delay (frames); the stall was counted."""
    pipeline = _StallingPipeline(StreamingSeparator(random_model, channels=2), RATE, 2, levels)
    engine = _Engine(pipeline)

    def stall(start: int) -> None:
        if start // BLOCK == RATE // BLOCK:
            pipeline.stall_s = 0.3
        if during is not None and start // BLOCK == (RATE + RATE // 10) // BLOCK:
            during(levels)

    out = engine.run(x, on_block=stall)
    assert engine.callback.short_frames > 0
    return out, engine.delay


def test_a_stalled_worker_means_dry_output_aligned_with_the_wet_path_never_silence(random_model):
    levels = LevelRamp(RATE, vocals=0, instrumental=100)  # wet differs from dry: we can tell them apart
    x = noise(RATE * 3)
    # after 1 s: a 300 ms stall, far beyond the margin; the shortfall happened and was counted
    out, delay = _stalled_run(random_model, levels, x)
    dry = np.zeros_like(x)
    dry[delay:] = x[:-delay]
    played_dry = np.all(np.abs(out - dry) < 1e-6, axis=1)
    stalled = slice(RATE + delay, RATE + delay + int(0.2 * RATE))
    assert played_dry[stalled].mean() > 0.9  # during the stall: the dry input, same latency
    assert np.sqrt(np.mean(out[stalled] ** 2)) > 0.5 * np.sqrt(np.mean(x ** 2))  # not silence
    # and before the stall, and again after it (the worker caught up or resynced), the wet mix
    assert played_dry[delay + 4096:RATE].mean() < 0.05
    assert played_dry[-RATE // 2:].mean() < 0.05


def test_a_shortfall_plays_the_dry_input_at_the_user_s_level(random_model):
    # At 0 % / 0 % the user asked for silence: a late worker must not bring the song back at full
    # volume (CI heard a muted `run` at -14.9 dBFS when its first mix came late). At equal levels
    # the dry input scaled by them is exactly the mix.
    x = noise(RATE * 3)
    out, _ = _stalled_run(random_model, LevelRamp(RATE, vocals=0, instrumental=0), x)
    assert np.abs(out).max() < 1e-6
    out, delay = _stalled_run(random_model, LevelRamp(RATE, vocals=40, instrumental=40), x)
    stalled = slice(RATE + delay, RATE + delay + int(0.2 * RATE))
    np.testing.assert_allclose(out[stalled], 0.4 * x[RATE:RATE + int(0.2 * RATE)], atol=1e-5)


def test_a_level_change_while_the_output_is_dry_ramps_without_a_click(random_model):
    t = np.arange(3 * RATE) / RATE
    tone = np.stack([0.5 * np.sin(2 * np.pi * 220 * t)] * 2, axis=1).astype(np.float32)
    out, delay = _stalled_run(random_model, LevelRamp(RATE), tone,
                              during=lambda levels: levels.set(vocals=0, instrumental=0))
    stalled = out[RATE + delay:RATE + delay + int(0.2 * RATE)]
    assert np.abs(stalled[:int(0.05 * RATE)]).max() > 0.4  # dry at 100 % before the change
    assert np.abs(stalled[-int(0.05 * RATE):]).max() < 1e-6  # silent after it, still in the stall
    own_step = np.abs(np.diff(tone, axis=0)).max()
    assert np.abs(np.diff(stalled, axis=0)).max() < 1.5 * own_step + 1.0 / (0.005 * RATE)


def test_a_model_that_fails_its_measurement_leaves_the_engine_dry_not_stuck(random_model):
    class BrokenPipeline(SeparationPipeline):
        def measure_compute(self):
            raise RuntimeError("model bug")

    pipeline = BrokenPipeline(StreamingSeparator(random_model, channels=2), RATE, 2,
                              LevelRamp(RATE, vocals=0, instrumental=100))
    engine = _Engine(pipeline)
    started = time.perf_counter()
    x = noise(RATE)
    out = engine.run(x)
    assert time.perf_counter() - started < 3.0  # start() did not wait out its timeout
    assert isinstance(engine.worker.failure, RuntimeError)
    delay = engine.delay
    usable = (len(x) // BLOCK) * BLOCK
    np.testing.assert_array_equal(out[delay:usable], x[:usable - delay])  # the dry input


def test_nothing_escapes_the_callback():
    class BrokenSource:
        def read_into(self, out):
            raise RuntimeError("decoder bug")

    ring = SampleRing(RATE, 2)
    callback = AudioCallback(ring, SampleRing(RATE, 2), 1000, RATE, 4096, threading.Event(), source=BrokenSource())
    out = np.ones((BLOCK, 2), np.float32)
    callback.output_only(out, BLOCK, None, None)
    assert callback.errors == 1 and not out.any()


def test_a_late_worker_fades_to_dry_and_back_without_a_click(random_model):
    # The random network's vocal estimate is nearly silent, so with vocals 100 % / instrumental
    # 0 % the wet mix is near silence while the dry input is loud low tones: a hard switch between
    # them would step by the full amplitude in one sample.
    t = np.arange(3 * RATE) / RATE
    tones = np.stack([0.3 * np.sin(2 * np.pi * 110 * t) + 0.2 * np.sin(2 * np.pi * 220 * t)] * 2, axis=1)
    tones = tones.astype(np.float32)
    out, delay = _stalled_run(random_model, LevelRamp(RATE, vocals=100, instrumental=0), tones)
    usable = out[delay:(len(tones) // BLOCK) * BLOCK]
    assert np.abs(usable).max() > 0.3  # the dry tones did come through during the stall
    own_step = np.abs(np.diff(tones, axis=0)).max()
    assert np.abs(np.diff(usable, axis=0)).max() < 1.5 * own_step


def _two_streams(x: np.ndarray, input_gaps=(), output_gaps=(), input_losses=(), in_block=165, out_block=496,
                 delay=3000, output_burst=1, drift_ppm=0.0, worker_ahead=None):
    """Drives a sync-mode callback's input and output sides on a simulated clock (dry path: no
    worker), like PortAudio's two streams on one sound-server clock. input_gaps: (t, s) the input
    callbacks stop for s seconds from t, then the missed blocks arrive at once (a late input
    thread). output_gaps: (t, s) the output loses s seconds (an underrun: the server moved on
    without us). input_losses: (t, s) the input's blocks of those s seconds never come (an
    overrun: the server dropped them). output_burst: the output's first callback comes that many
    times at once (a server prefilling its buffer, as PipeWire does). drift_ppm: the output's clock
    runs that much faster than the input's (a sound card against a virtual cable; < 0: slower).
    worker_ahead: an instant worker whose mix reaches this many frames past the input received
    (the session's margin: worker.py), so that `short_frames` counts the blocks played dry.
    Returns the output and the lead (input frames received minus output position) at each output
    callback."""
    capacity = delay + 4 * RATE
    now = [0.0]
    callback = AudioCallback(SampleRing(capacity, 2), SampleRing(capacity, 2), delay, RATE, 4096,
                             threading.Event(), start_lag=511, clock=lambda: now[0])
    out_period = out_block / RATE / (1.0 + drift_ppm * 1e-6)
    out = np.zeros((len(x) + 8 * RATE, 2), np.float32)
    leads, written, received, t = [], 0, 0, 0.0
    next_in, next_out, step = 0.0, in_block / RATE / 2, 1e-4
    while received + in_block <= len(x):
        t += step
        now[0] = t
        due_in = t >= next_in and not any(a <= t < a + s for a, s in input_gaps)
        if due_in:
            while next_in <= t and received + in_block <= len(x):  # the missed blocks, at once
                if any(a <= next_in < a + s for a, s in input_losses):
                    next_in += in_block / RATE
                    continue
                callback.input_block(x[received:received + in_block], in_block, None, None)
                received += in_block
                if worker_ahead is not None:
                    callback.valid = (delay, received + worker_ahead)
                next_in += in_block / RATE
        if t >= next_out:
            next_out += out_period
            if any(a <= t < a + s for a, s in output_gaps):
                continue  # the server played on without this block
            for _ in range(output_burst if written == 0 else 1):
                callback.output_block(out[written:written + out_block], out_block, None, None)
                leads.append(callback.position - (callback.out_position - out_block))
                written += out_block
    return out[:written], np.array(leads), callback


def test_a_late_input_callback_is_ridden_out_without_moving_the_latency():
    x = noise(RATE * 3, seed=3)
    _, leads, callback = _two_streams(x, input_gaps=[(1.0, 0.03)])
    # The start settled while the output played the silence before the input's first delay
    # (restart_output), so nothing moved: not even a catch-up.
    assert callback.realignments == 0
    before, after = np.median(leads[50:85]), np.median(leads[-80:])
    assert abs(after - before) < 200, (before, after)
    assert leads.min() < 0  # the dip happened: the output asked for input not yet received


def test_the_lead_settles_at_the_same_place_whatever_the_start():
    x = noise(RATE * 3, seed=6)
    for in_block, out_block in ((165, 496), (256, 1024), (441, 441), (1024, 256)):
        _, leads, callback = _two_streams(x, in_block=in_block, out_block=out_block)
        assert callback.fall_backs == 0
        # an output block longer than the start lag (511) is kept that much more lead, and up to a
        # start lag more before a catch-up ("Output blocks")
        longer = max(0, out_block - 511)
        low = np.min(leads[len(leads) // 2:]) - longer
        assert 0 <= low <= 300 + (511 if longer else 0), (in_block, out_block, low)


@pytest.mark.parametrize("out_block", [496, 992, 1323])
def test_output_blocks_longer_than_the_input_s_get_their_mix_in_time(out_block):
    """PortAudio calls the output back in a quarter of its buffer on the ALSA pulse plugin (496
    frames at 45 ms, 992 at 90, 1323 at 120) and in longer blocks still on other hosts, while the
    session's margin covers one input block. Each output block's mix must be whole when it is
    played: the output keeps the lead that the longer block needs (measured before: at 120 ms,
    lead settled for a 512-frame block, 7.3 million frames played dry in 12 minutes)."""
    x = noise(RATE * 4, seed=9)
    margin = 511 + 441  # one input block and 10 ms (StreamSettings' defaults)
    _, leads, callback = _two_streams(x, in_block=512, out_block=out_block, worker_ahead=margin)
    assert callback.short_frames == 0, (callback.short_frames, callback.block_lead)
    assert callback.fall_backs <= 1 and callback.catch_ups <= 1
    # the lead it keeps: no more than the longer block needs (a lowest lead of LOWEST_LEAD plus
    # the block's excess over the start lag) and the input block a catch-up leaves to the wander
    assert np.min(leads[len(leads) // 2:]) <= 300 + max(0, out_block - 511) + 512, leads[len(leads) // 2:].min()


def test_with_longer_output_blocks_a_late_input_is_ridden_out_and_a_lost_one_made_up():
    """A late input callback's dip lasts a window: going back for it and catching up after its
    burst would be two slips. Input lost for good (an overrun) leaves the lead short for as long as
    it plays: the output goes back once, and the mix is whole again."""
    x = noise(RATE * 5, seed=10)
    _, _, late = _two_streams(x, in_block=512, out_block=1323, worker_ahead=952, input_gaps=[(2.0, 0.06)])
    assert late.realignments == 0, (late.realignments, late.catch_ups)
    _, leads, lost = _two_streams(x, in_block=512, out_block=1323, worker_ahead=952, input_losses=[(2.0, 0.03)])
    assert lost.realignments == 1 and lost.fall_backs == 0 and lost.catch_ups == 0
    short = lost.short_frames
    assert 0 < short <= 3 * RATE // 2  # the two windows before it went back (it played dry meanwhile)
    assert np.min(leads[-40:]) >= lost.block_lead  # whole again: no block came short after


def test_an_input_stall_longer_than_the_delay_realigns_and_never_plays_unreceived_input():
    x = noise(RATE * 3, seed=5)
    _, leads, callback = _two_streams(x, input_gaps=[(1.0, 0.2)], delay=3000)
    assert callback.realignments >= 1
    assert leads.min() >= 496 - 3000  # every block's dry input had arrived when it played


def test_an_output_underrun_s_extra_latency_is_removed_smoothly():
    t = np.arange(RATE * 4) / RATE
    tone = np.stack([0.3 * np.sin(2 * np.pi * 220 * t)] * 2, axis=1).astype(np.float32)
    out, leads, callback = _two_streams(tone, output_gaps=[(1.0, 0.05)])
    before, after = np.median(leads[50:85]), np.median(leads[-80:])
    assert callback.catch_ups == 1 and callback.realignments == 1  # the underrun's (the start settled in silence)
    assert abs(after - before) < 200, (before, after)  # without the catch-up: 2205 frames more
    assert np.percentile(leads[100:150], 50) > before + 1500  # it was there before the catch-up
    own_step = np.abs(np.diff(tone, axis=0)).max()
    audible = out[3000 + 2048:]  # after the first delay's silence
    assert np.abs(np.diff(audible, axis=0)).max() < 2.5 * own_step  # crossfaded: no click


@pytest.mark.parametrize("drift_ppm", [200.0, -200.0])
def test_two_clocks_drifting_apart_are_kept_in_step_by_small_trims_without_a_click(drift_ppm):
    """A sound card against a virtual cable: the output's clock runs 200 ppm fast (or slow). Over
    40 s that is 353 frames: untrimmed, the lead sinks until the mix runs short and the output
    falls back by a block (or grows until a catch-up). Trimmed, the lead stays where it settled
    and nothing moves by more than TRIM_MAX frames."""
    seconds = 40
    t = np.arange(RATE * seconds) / RATE
    tone = np.stack([0.3 * np.sin(2 * np.pi * 220 * t)] * 2, axis=1).astype(np.float32)
    out, leads, callback = _two_streams(tone, drift_ppm=drift_ppm)
    assert callback.realignments == callback.fall_backs == callback.catch_ups == 0
    drifted = drift_ppm * 1e-6 * len(out)  # frames the output's clock gained on the input's
    assert callback.drift_trims >= 8  # one every two DRIFT_S periods
    # all but the drift before the first median (0.5 s settling + DRIFT_S) and since the last trim
    untrimmed = (0.5 + 3 * DRIFT_S) * RATE * abs(drift_ppm) * 1e-6
    assert abs(callback.drift_trimmed + drifted) < untrimmed + TRIM_MIN, (callback.drift_trimmed, drifted)
    settled, end = np.median(leads[100:400]), np.median(leads[-300:])
    assert abs(end - settled) < 40, (settled, end)  # untrimmed: 353 frames
    own_step = np.abs(np.diff(tone, axis=0)).max()
    audible = out[3000 + 2048:]
    assert np.abs(np.diff(audible, axis=0)).max() < 1.5 * own_step  # each trim crossfaded: no click


def test_the_same_clock_on_both_sides_is_never_trimmed():
    """Two streams on one clock (one sound server's graph) with a late input callback now and
    then: the lead's median does not move, so nothing is trimmed."""
    x = noise(RATE * 30, seed=8)
    gaps = [(float(a), 0.03) for a in range(3, 28, 4)]
    _, _, callback = _two_streams(x, input_gaps=gaps)
    assert callback.drift_trims == 0 and callback.realignments == 0


def test_an_output_prefilled_in_a_burst_at_the_start_moves_nothing_once_the_sound_plays():
    """PipeWire prefills the output in a burst of callbacks at the start (and a sound server does
    whenever the output starts again after idle): taken up once, the output began ~1500 frames
    ahead of its input and played dry until a fall-back moved it. While the output plays the
    silence before the input's first `delay` frames, each block is taken up at LOWEST_LEAD
    behind the input instead, so the burst is absorbed before any sound plays."""
    from whamsah_tray.engine.callback import LOWEST_LEAD

    x = noise(RATE * 2, seed=8)
    out, leads, callback = _two_streams(x, output_burst=5)
    assert (leads[:5] == LOWEST_LEAD).all()  # the burst, taken up block by block
    assert callback.realignments == callback.fall_backs == callback.catch_ups == 0
    sound = int(np.argmax(np.abs(out).max(axis=1) > 0))
    assert leads[sound // 496:].min() > -600, leads[sound // 496 - 2:sound // 496 + 10]


def test_an_output_left_ahead_of_its_input_goes_back_and_plays_wet_again():
    x = noise(RATE * 4, seed=4)
    _, leads, callback = _two_streams(x, input_losses=[(1.0, 0.03)])
    before, after = np.median(leads[50:85]), np.median(leads[-80:])
    assert np.median(leads[95:120]) < before - 1000  # ahead of the input (dry) for a while
    assert callback.fall_backs == 1
    assert abs(after - before) < 200, (before, after)


def test_a_file_starts_after_its_lead_in_and_plays_every_frame_once(tmp_path):
    """The file player's callback side: silence first (LEAD_IN_S, and until PREBUFFER_S is
    decoded), then every frame of the file exactly once, then silence; `finished` at the end."""
    import soundfile

    from whamsah_tray.engine.file_player import LEAD_IN_S, FilePlayer

    content = noise(RATE * 2)
    path = tmp_path / "clip.wav"
    soundfile.write(str(path), content, RATE, subtype="FLOAT")
    player = FilePlayer(path, RATE, 2, max_frames=4096)
    player.start()
    deadline = time.monotonic() + 10
    while player.total_frames is None and time.monotonic() < deadline:  # decoded ahead (3 s ring)
        time.sleep(0.01)
    blocks = []
    for _ in range(int(3 * RATE / 333)):
        block = np.zeros((333, 2), np.float32)
        player.read_into(block)
        blocks.append(block)
    player.stop()
    played = np.concatenate(blocks)
    start = int(np.argmax(np.any(played != 0, axis=1)))
    assert LEAD_IN_S * RATE <= start < LEAD_IN_S * RATE + 333
    np.testing.assert_array_equal(played[start:start + len(content)], content)
    assert not np.any(played[start + len(content):])
    assert player.finished and player.starved_frames == 0


def test_the_last_model_asked_for_wins_whichever_load_finishes_first():
    """set_model('slow') then set_model('fast'): the fast load arrives first, the slow one later;
    the engine must end on 'fast', the user's last choice (loads used to be taken up as they came)."""
    import types

    from whamsah_tray.engine import EngineController, EngineSettings

    def factory(name):
        time.sleep(1.0 if name == "slow" else 0.1)
        return types.SimpleNamespace(info=types.SimpleNamespace(name=name or "default"))

    engine = EngineController(EngineSettings(), model_factory=factory)
    try:
        engine.set_model("slow")
        engine.set_model("fast")
        time.sleep(1.6)  # both loads have finished
        assert engine.status.model_name == "fast"
    finally:
        engine.close()
