"""One open PortAudio stream with its audio callback, inference worker and, in async mode, file player.

Sync mode: an input stream and an output stream (see callback.py for why not one duplex stream),
input device -> callbacks -> output device. Async mode: one output stream whose callback takes its
input from a FilePlayer instead of a device. Both use the same
callback and worker, so a file gets exactly the live path (levels, bypass, dry fallback).

The stream runs at the model's rate when both devices accept it (PulseAudio, CoreAudio and
WASAPI with auto-conversion, which `_host_settings` asks for, resample for us, with less delay than
soxr's bursts); otherwise at the output's or the input's default rate, and the worker resamples
(pipeline.py).

Latency, in frames at the stream rate (see worker.py):
    delay = pipeline latency (model) + the model's compute time for a hop (measured)
            + one callback block + resampler holdback + margin
plus, in sync mode, one block (the output starts behind the input), plus PortAudio's own input
and output buffering (`stream.latency`).

Built, opened, checked and closed by the controller thread; its parts then run on their threads.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from whamsah_tray.engine import pulse
from whamsah_tray.engine.callback import FADE_S, AudioCallback
from whamsah_tray.engine.devices import (INPUT, OUTPUT, PORTAUDIO_LOCK, AudioDevice, _sounddevice, same_cable,
                                         stream_closed, stream_opened)
from whamsah_tray.engine.file_player import FilePlayer
from whamsah_tray.engine.pipeline import MAX_COMPUTE_S, SeparationPipeline
from whamsah_tray.engine.ring_buffer import SampleRing
from whamsah_tray.engine.silent_cable import ZeroWatch
from whamsah_tray.engine.worker import InferenceWorker, delay_for
from whamsah_tray.errors import DeviceError, FeedbackLoopError

CHANNELS = 2
MAX_CALLBACK_FRAMES = 16384
_session_numbers = itertools.count(1)
STALLED_CHECKS = 6  # health checks in a row (0.5 s apart) without a callback: the device hung
# The sound server is asked again only when it reported a change (pulse.change_count), or after
# this long in any case.
SERVER_RECHECK_S = 10.0


# With blocksize 0 PortAudio calls back with the host's period, up to about this long.
VARIABLE_BLOCK_S = 0.0116


@dataclass(frozen=True)
class StreamSettings:
    # 0: PortAudio's own period (varying sizes). Measured here: a fixed 256 on the ALSA pulse
    # plugin makes PortAudio's thread poll in a loop (44 % CPU for a plain pass-through loop);
    # 0 or >= the period (1024) costs 2 %.
    blocksize: int = 0
    # PortAudio's suggested latencies (its device buffers) in sync mode. Measured with
    # bench/bench_engine.py on the 2-core test machine with a training job on both cores: 30 ms
    # output buffers underran 106 times in 10 minutes (each an audible slip), 45 ms 7 times; a short
    # input buffer hands blocks over sooner, which pays for most of the longer output buffer.
    input_latency_s: float = 0.015
    output_latency_s: float = 0.045
    # Async mode (a file) has no input to keep up with: deeper buffers cost nothing the user hears
    # but a slightly later pause/level response, and ride out a busy machine (measured here with
    # the CPU busy: 30 ms slipped or lost the start of ~1 play in 4, 100 ms none in 40).
    file_io_latency_s: float = 0.1
    # Sync mode's input stream calls back with blocks of this many frames (a hop of the model at
    # 44.1 kHz: the worker runs a whole hop at a time anyway, so larger blocks cost no latency).
    # Measured with a silent cable on the ALSA pulse plugin: PortAudio's own period (blocksize 0)
    # called back 268 times a second on PulseAudio, 374 on PipeWire (1.9-2.8 % of a core for the
    # input stream alone); blocks of 512, 86 times a second (1.2 %).
    input_blocksize: int = 512
    # Idle: after this long with a digitally silent input, the output stream stops until sound
    # comes (see worker.py); 0 never.
    idle_after_s: float = 2.0
    margin_s: float = 0.01  # scheduling jitter (a model's own compute time is measured: worker.py)
    # Sync mode: how much lead the output may add after the worker was late or the output
    # underran, and drop again after a quiet spell (callback.py, "adaptive margin"); 0 pins it.
    # Pinned by default: measured with bench/bench_engine.py --load blas (10 min, PulseAudio), the
    # late blocks came in pairs a few minutes apart, and each raise and each drop of the margin was
    # a slip of its own (6 dropout windows; pinned, the same late blocks only play dry, 11 ms each).
    # The profile's latency = "auto" turns it on (up to 50 ms: under 200 ms end to end).
    adaptive_margin_s: float = 0.0
    prefer_rate: int = 44100  # the model's rate
    torch_threads: int = 1


# The profile's [audio] latency: PortAudio's input/output buffers and the worker's margin, seconds.
# "balanced" is StreamSettings' defaults (measured in its comments); "auto" the same buffers with
# the margin adapting to the machine's load (callback.py); "low" trims each for a quiet machine,
# "safe" doubles the output buffer and triples the margin for a busy one.
LATENCY_PRESETS: dict[str, dict[str, float]] = {
    "auto": {"adaptive_margin_s": 0.05},
    "low": {"input_latency_s": 0.010, "output_latency_s": 0.030, "margin_s": 0.005},
    "balanced": {},
    "safe": {"input_latency_s": 0.020, "output_latency_s": 0.090, "margin_s": 0.030},
}


def stream_settings_for(latency: str) -> StreamSettings:
    """StreamSettings for a LATENCY_PRESETS name (an unknown one: auto)."""
    return StreamSettings(**LATENCY_PRESETS.get(latency, {}))


def _host_settings(device: AudioDevice):
    """PortAudio's host-API-specific stream settings for `device`: on WASAPI, shared mode with
    auto-conversion, so that a device opens at a rate other than its mix format's (the cable and
    the speakers at different rates, or at the model's 44.1 kHz); elsewhere none."""
    if "wasapi" in device.host_api.lower():
        return _sounddevice().WasapiSettings(auto_convert=True)
    return None


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Sets environment variables while PortAudio opens a stream (the ALSA pulse plugin reads
    PULSE_SOURCE / PULSE_SINK / PULSE_PROP then). Controller thread only."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class LiveSession:
    def __init__(self, output: AudioDevice, input: AudioDevice | None,
                 make_pipeline: Callable[[int], SeparationPipeline], settings: StreamSettings,
                 file_path: str | None = None, file_start_s: float = 0.0) -> None:
        """input None: async mode (file_path required, played from file_start_s seconds on).
        make_pipeline(rate) builds the pipeline."""
        self.output = output
        self.input = input
        self.settings = settings
        self.tag = f"{os.getpid()}-{next(_session_numbers)}"  # finds our streams on the sound server
        self.sample_rate = self._choose_rate()
        self.player = FilePlayer(file_path, self.sample_rate, CHANNELS, MAX_CALLBACK_FRAMES,
                                 start_s=file_start_s) if file_path else None
        pipeline = make_pipeline(self.sample_rate)
        # The mix for a block must be ready one block ahead of its input: a block, the resamplers'
        # bursts, and the margin for the worker's scheduling (the model's compute time: worker.py).
        # Async mode's one callback stores a file block and plays the same positions, so its mix
        # must be ready a whole callback block ahead; with the deep file buffers PortAudio calls
        # back with blocks of up to the buffer's length (25 ms here on the ALSA pulse plugin, more
        # on other hosts), far more than a sync-mode block. A margin of an 11.6 ms block let each
        # file block's mix arrive after it was due: the file played dry, unseparated. A file has
        # no live input to keep up with, so it gets a block of the whole buffer's length.
        block = settings.blocksize or int(VARIABLE_BLOCK_S * self.sample_rate)
        if input is not None:
            block = max(block, settings.input_blocksize)
        ahead = block if input is not None else max(block, int(settings.file_io_latency_s * self.sample_rate))
        self.margin = ahead + pipeline.resampler_holdback(ahead) + int(settings.margin_s * self.sample_rate)
        delay = delay_for(pipeline, self.margin)  # the worker adds the model's compute time when it starts
        # Room for that compute time, and for a model with a longer latency chosen later.
        capacity = delay + MAX_CALLBACK_FRAMES + int((2 + MAX_COMPUTE_S) * self.sample_rate)
        self.wake = threading.Event()
        self.callback = AudioCallback(SampleRing(capacity, CHANNELS), SampleRing(capacity, CHANNELS), delay,
                                      self.sample_rate, MAX_CALLBACK_FRAMES, self.wake, source=self.player,
                                      start_lag=block,
                                      max_extra_lead=int(settings.adaptive_margin_s * self.sample_rate) if input else 0,
                                      levels=pipeline.levels)
        idle_after = int(settings.idle_after_s * self.sample_rate) if input is not None else 0
        self.worker = InferenceWorker(self.callback, pipeline, self.margin, settings.torch_threads,
                                      output=self, idle_after=idle_after)
        if input is not None:
            self.worker.zero_watch = ZeroWatch(self.sample_rate)
        self.output_paused = False  # stopped while idle (worker thread), see pause_output
        self.streams: list = []  # sync mode: [input, output]; async mode: [output]
        self.finished_by_portaudio = False  # the stream ended on its own (device error)
        self.server_nodes: dict[str, str] = {}  # INPUT/OUTPUT -> pulse node our stream is attached to
        self.own_sink_inputs: set[int] = set()  # our output stream's index on the server
        self._suspicion: str | None = None  # a server-side loss seen once, awaiting confirmation
        self._server_look = pulse.ServerLook(SERVER_RECHECK_S)  # when the server is worth asking again
        self._last_callbacks = (-1, -1)
        self._stalled_checks = 0

    # --- opening --------------------------------------------------------------------------
    def _environment(self) -> dict[str, str]:
        values = {"PULSE_PROP": f"whamsah.stream={self.tag}"}
        values.update(self.output.open_environment(OUTPUT))
        if self.input is not None:
            values.update(self.input.open_environment(INPUT))
        return values

    def _channels(self) -> tuple[int, int]:
        out_channels = min(CHANNELS, self.output.max_output_channels)
        in_channels = min(CHANNELS, self.input.max_input_channels) if self.input is not None else 0
        return in_channels, out_channels

    def _choose_rate(self) -> int:
        sd = _sounddevice()
        in_channels, out_channels = self._channels()
        rates = [self.settings.prefer_rate, int(self.output.default_samplerate)]
        if self.input is not None:
            rates.append(int(self.input.default_samplerate))
        with PORTAUDIO_LOCK, _environment(self._environment()):
            for rate in dict.fromkeys(rates):
                try:
                    sd.check_output_settings(self.output.index, channels=out_channels, samplerate=rate,
                                             dtype="float32", extra_settings=_host_settings(self.output))
                    if self.input is not None:
                        sd.check_input_settings(self.input.index, channels=in_channels, samplerate=rate,
                                                dtype="float32", extra_settings=_host_settings(self.input))
                    return rate
                except (sd.PortAudioError, ValueError):
                    continue
        raise DeviceError(f"'{self._names()}' cannot be opened at {' or '.join(map(str, dict.fromkeys(rates)))} Hz")

    def _names(self) -> str:
        return self.output.name if self.input is None else f"{self.input.name}' -> '{self.output.name}"

    def open(self) -> None:
        """Opens and starts the stream(s); raises DeviceError (and leaves nothing running),
        FeedbackLoopError when the input records the output."""
        loop = self._feedback_loop()  # by the chosen devices' names; by the server's nodes below
        if loop is not None:
            raise FeedbackLoopError(loop)
        sd = _sounddevice()
        in_channels, out_channels = self._channels()
        common = dict(samplerate=self.sample_rate, blocksize=self.settings.blocksize, dtype="float32",
                      finished_callback=self._finished)
        try:
            with PORTAUDIO_LOCK, _environment(self._environment()):
                if self.input is None:
                    self._add_stream(sd.OutputStream(device=self.output.index, channels=out_channels,
                                                     callback=self.callback.output_only,
                                                     latency=self.settings.file_io_latency_s,
                                                     extra_settings=_host_settings(self.output), **common))
                else:
                    self._add_stream(sd.InputStream(device=self.input.index, channels=in_channels,
                                                    callback=self.callback.input_block,
                                                    latency=self.settings.input_latency_s,
                                                    extra_settings=_host_settings(self.input),
                                                    **{**common, "blocksize": self.settings.input_blocksize}))
                    self._add_stream(sd.OutputStream(device=self.output.index, channels=out_channels,
                                                     callback=self.callback.output_block,
                                                     latency=self.settings.output_latency_s,
                                                     extra_settings=_host_settings(self.output),
                                                     **{**common, "finished_callback": self._output_finished}))
            if self.player is not None:
                self.player.start()
            self.worker.start()
            for stream in self.streams:  # input first: the output starts behind it
                stream.start()
        except (sd.PortAudioError, OSError, ValueError) as error:
            self.close()
            raise DeviceError(f"cannot open '{self._names()}': {error}") from error
        self.server_nodes = self._find_server_nodes() or {}
        loop = self._feedback_loop()
        if loop is not None:
            self.close()
            raise FeedbackLoopError(loop)

    def _feedback_loop(self) -> str | None:
        """Why the input would record the engine's own output, or None. Judged on the sound
        server's nodes our streams are attached to (whatever names the devices were chosen by:
        an ALSA alias, 'default', a description) and, before that, on the chosen nodes' names."""
        if self.input is None:
            return None
        if same_cable(self.input, self.output):
            return (f"the output '{self.output.name}' plays into the virtual cable that the input "
                    f"'{self.input.name}' records: that would be a feedback loop; choose your speakers "
                    f"as the output")
        pairs = [(self.input.pulse_name, self.output.pulse_name),
                 (self.server_nodes.get(INPUT), self.server_nodes.get(OUTPUT))]
        for source, sink in pairs:
            if source and sink and source == f"{sink}.monitor":
                return (f"the input '{self.input.name}' records the output '{self.output.name}' "
                        f"({source}): that would be a feedback loop; choose the virtual cable as the input "
                        f"and your speakers as the output")
        return None

    def _add_stream(self, stream) -> None:
        self.streams.append(stream)
        stream_opened()

    def _finished(self) -> None:  # PortAudio's thread, once, when the stream ends
        self.finished_by_portaudio = True

    def _output_finished(self) -> None:  # sync mode's output: stopping it for idle is no loss
        if not self.output_paused:
            self.finished_by_portaudio = True

    # --- idle (worker thread) -------------------------------------------------------------
    def pause_output(self) -> bool:
        """Stops sync mode's output stream while nothing plays (it plays silence then). False when
        it cannot now (the controller holds PortAudio: it is opening or closing something)."""
        if not PORTAUDIO_LOCK.acquire(timeout=0.05):
            return False
        try:
            if len(self.streams) != 2 or self.finished_by_portaudio:
                return False
            self.output_paused = True
            try:
                self.streams[-1].abort()
            except Exception:  # a vanished device: the health check will say so
                self.output_paused = False
                return False
            return True
        finally:
            PORTAUDIO_LOCK.release()

    def resume_output(self) -> bool:
        """Starts the output again for the sound that just came in. A device that cannot start
        counts as lost (the controller reopens the session)."""
        with PORTAUDIO_LOCK:
            if len(self.streams) != 2 or not self.output_paused:
                return False
            self.callback.restart_output()
            try:
                self.streams[-1].start()
            except Exception:
                self.finished_by_portaudio = True
                return False
            finally:
                self.output_paused = False
            return True

    # --- health (controller thread) ------------------------------------------------------
    def _find_server_nodes(self) -> dict[str, str] | None:
        """The sound-server nodes our streams are attached to: {} when not on PulseAudio/PipeWire,
        None when the server could not be asked just now."""
        try:
            if not pulse.available():
                return {}
            nodes = {}
            for kind, streams, listing in ((INPUT, pulse.source_outputs, pulse.sources),
                                           (OUTPUT, pulse.sink_inputs, pulse.sinks)):
                ours = [s for s in streams() if s.properties.get("whamsah.stream") == self.tag]
                if ours:
                    names = {node.index: node.name for node in listing()}
                    nodes[kind] = names.get(ours[0].device_index, "")
                    if kind == OUTPUT:
                        self.own_sink_inputs = {stream.index for stream in ours}
        except DeviceError:
            return None
        return nodes

    def lost_reason(self) -> str | None:
        """Why the stream no longer works, or None. PortAudio does not notice when the sound
        server moves our stream elsewhere because its device vanished, hence the server check;
        a server-side finding counts only when two checks in a row agree (a busy server may
        answer late or list a stream mid-move)."""
        if not self.streams:
            return "the stream is closed"
        paused = self.output_paused  # idle: the output stream is stopped on purpose
        running = self.streams[:-1] if paused else self.streams
        try:
            active = all(stream.active for stream in running)
        except Exception:  # PortAudio raises for a stream in error
            active = False
        if self.finished_by_portaudio or not active:
            return "the audio stream stopped"
        callbacks = (self.callback.callbacks, self.callback.input_callbacks)
        stalled = (not paused and callbacks[0] == self._last_callbacks[0]) or (
            self.input is not None and callbacks[1] == self._last_callbacks[1])
        self._last_callbacks = callbacks
        self._stalled_checks = self._stalled_checks + 1 if stalled else 0
        if self._stalled_checks >= STALLED_CHECKS:
            # (a fresh PulseAudio null sink may deliver in 2 s bursts at first: not a loss)
            return "the device stopped delivering audio"
        # Asking the server costs seven pactl calls (~50 ms of CPU): twice a second that was 10 % of
        # a core. Only after it reported a change, or to confirm a loss seen once.
        if not self.server_nodes or not self._server_look.due(force=self._suspicion is not None):
            return None
        self._server_look.done()
        reason = self._server_reason()
        confirmed = reason if reason is not None and reason == self._suspicion else None
        self._suspicion = reason
        return confirmed

    def _server_reason(self) -> str | None:
        now = self._find_server_nodes()
        if now is None:
            return None
        try:
            existing = {node.name for node in pulse.sources()} | {node.name for node in pulse.sinks()}
        except DeviceError:
            return None
        for kind, node in self.server_nodes.items():
            if node not in existing:
                return f"'{node}' vanished"
            if kind == OUTPUT and self.output_paused:
                # Resting (corked): PipeWire lists the stream attached to no sink meanwhile. The
                # device itself is checked above; the stream is judged again once it plays.
                continue
            if kind not in now:
                return f"the sound server dropped our {kind} stream"
            if now[kind] and now[kind] != node:  # moved by the user to another existing device: follow
                self.server_nodes[kind] = now[kind]
        return None

    # --- closing --------------------------------------------------------------------------
    def fade_out(self) -> None:
        """Fades the output to silence and waits until the device has played that fade (its
        buffer and a callback block), so that close() then drops only silence: switching to
        another file, a seek or a stop never clicks. Controller thread; ~0.15 s for a file's
        stream, ~0.07 s in sync mode. Nothing to wait for on a stream that stopped by itself."""
        if not self.streams or self.finished_by_portaudio:
            return
        self.callback.closing = True
        try:
            buffered = max(stream.latency for stream in self.streams)
        except Exception:
            return
        time.sleep(min(0.3, FADE_S + buffered + 2 * VARIABLE_BLOCK_S))

    def close(self) -> None:
        with PORTAUDIO_LOCK:
            for stream in self.streams:
                with contextlib.suppress(Exception):  # a vanished device may fail to stop cleanly
                    stream.abort()
                with contextlib.suppress(Exception):
                    stream.close()
                stream_closed()
            self.streams = []
        self.worker.stop()
        if self.player is not None:
            self.player.stop()

    # --- figures --------------------------------------------------------------------------
    @property
    def latency_s(self) -> float:
        """Processing delay plus PortAudio's input and output buffering; in sync mode plus how far
        the output runs behind the input on average (about half a block more or less than the
        start lag, with the two streams' block sizes)."""
        buffers = sum(stream.latency for stream in self.streams)
        lag = self.callback.mean_lead if self.input is not None else 0
        return (self.callback.delay + lag) / self.sample_rate + buffers

    @property
    def output_buffer_frames(self) -> int:
        """Frames the output callback has produced that the device has not played yet."""
        if not self.streams:
            return 0
        return int(self.streams[-1].latency * self.sample_rate)
