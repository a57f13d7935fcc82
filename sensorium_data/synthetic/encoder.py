"""The ground-truth world behind :func:`sensorium_data.synthesize`.

Three parts, numpy only:

- stimuli: natural-image-like pictures (two 1/f fields composed through an occlusion mask) and
  movies (the same, drifting along smooth random trajectories, with scene cuts), plus the
  out-of-distribution clips of the 2023 bonus tiers;
- behaviour: one continuous process per mouse (running bouts, arousal-driven pupil dilation,
  fixations and saccades of the eye) sampled at each trial's presentation time;
- the encoder: a bank of oriented Gabor channels (simple and complex cells) read out at one
  localised position per neuron, the position shifted with the eye, a temporal kernel for videos,
  a softplus output, a multiplicative behavioural gain and compound Poisson-gamma
  trial-to-trial noise (a Poisson number of events of gamma-distributed size).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

FRAME_RATE = 30.0
STATIC_STEP_S = 0.1
STATIC_STEPS_PER_TRIAL = 8
GAP_FRAMES = 15
RUN_REF, RUN_SCALE = 5.0, 10.0
PUPIL_REF, PUPIL_SCALE = 15.0, 4.0
OOD_TYPES = ("pink_noise", "gaussian_dots", "drifting_grating", "static_image")
_CHUNK = 64
_EVENT_SHAPE = 2.0


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """Documented constants of the ground-truth encoder.

    Attributes
    ----------
    n_orientations : int
        Orientations of the Gabor channel bank.
    periods : tuple of float
        Spatial periods of the channels, in encoder-grid pixels (the grid is 36 x 64 for
        144 x 256 images and for 36 x 64 videos).
    envelope : float
        Gaussian envelope sigma as a fraction of the period.
    complex_fraction : float
        Fraction of complex (phase-invariant energy) cells; the others are simple cells.
    behavior_gain : float
        Strength of the multiplicative behavioural gain:
        ``log gain = behavior_gain * (w_run * run_z + w_pupil * pupil_z)`` with per-neuron weights
        near 1.0 and 0.7 and ``run_z = (speed - 5) / 10``, ``pupil_z = (dilation - 15) / 4``.
        The default 0.5 moves gains between about 0.5 and 2, so a model given the behaviour
        clearly beats one that is not.
    shift_scale : float
        Receptive-field shift, in grid pixels, per standard deviation of eye position.
    fano : float
        Median Fano factor of the trial-to-trial noise (a Poisson number of events of
        gamma-distributed size), relative to each neuron's amplitude. Larger is
        noisier: :data:`STATIC_CONFIG` uses 3.5 (ground-truth rates reach a single-trial
        correlation of about 0.55 with the responses), :data:`DYNAMIC_CONFIG` 6.0 per frame.
    temporal_length : int
        Length in frames of the temporal kernels (videos only).
    """

    n_orientations: int = 8
    periods: tuple[float, ...] = (6.0, 11.0)
    envelope: float = 0.45
    complex_fraction: float = 0.4
    behavior_gain: float = 0.5
    shift_scale: float = 1.5
    fano: float = 3.5
    temporal_length: int = 12


STATIC_CONFIG = EncoderConfig()
DYNAMIC_CONFIG = EncoderConfig(fano=6.0)


def encoder_grid(height: int, width: int) -> tuple[int, int]:
    """Grid on which the encoder sees a stimulus of ``height x width`` (36 x 64 for 144 x 256)."""
    scale = min(36.0 / height, 64.0 / width)
    return max(8, round(height * scale)), max(8, round(width * scale))


# ----------------------------------------------------------------------------- stimuli


def _pink_spectra(
    rng: np.random.Generator, n: int, shape: tuple[int, int], alpha: np.ndarray
) -> np.ndarray:
    """``n`` random spectra with a 1/f**alpha amplitude, scaled to unit pixel variance."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    f = np.sqrt(fy**2 + fx**2)
    f[0, 0] = np.inf
    amp = f[None] ** -np.asarray(alpha, dtype=np.float64).reshape(-1, 1, 1)
    amp[:, 0, 0] = 0.0
    noise = rng.standard_normal((n, *f.shape, 2))
    spec = amp * (noise[..., 0] + 1j * noise[..., 1])
    norm = np.sqrt(2.0 * (amp**2).sum(axis=(1, 2), keepdims=True)) / (shape[0] * shape[1])
    return np.asarray(spec / norm, dtype=np.complex64)


def natural_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """One natural-image-like picture (float32, 0-255, integer valued)."""
    alpha = np.array([rng.uniform(0.9, 1.3), rng.uniform(0.9, 1.3), 1.8])
    a, b, m = np.fft.irfft2(_pink_spectra(rng, 3, (height, width), alpha), s=(height, width))
    lum = rng.uniform(60.0, 190.0, 2)
    con = rng.uniform(20.0, 60.0, 2)
    img = np.where(m > rng.normal(0.0, 0.5), lum[0] + con[0] * a, lum[1] + con[1] * b)
    return np.asarray(np.clip(np.round(img), 0, 255), dtype=np.float32)


def _smooth_noise(rng: np.random.Generator, n: int, tau: float) -> np.ndarray:
    """Unit-variance exponentially smoothed noise of length ``n`` (time constant in samples)."""
    klen = max(1, int(5 * tau))
    kernel = np.exp(-np.arange(klen) / max(tau, 1e-6))
    kernel /= np.sqrt((kernel**2).sum())
    white = rng.standard_normal(n + klen)
    size = 1 << int(np.ceil(np.log2(n + 2 * klen)))
    out = np.fft.irfft(np.fft.rfft(white, size) * np.fft.rfft(kernel, size), size)
    return out[klen : klen + n]


def _phase(grid: tuple[int, int], yx: np.ndarray) -> np.ndarray:
    """exp(2 pi i k . p) on the rfft half-plane for positions ``yx`` (B, 2) in grid pixels."""
    ey = np.exp(2j * np.pi * np.fft.fftfreq(grid[0])[None, :] * yx[:, :1]).astype(np.complex64)
    ex = np.exp(2j * np.pi * np.fft.rfftfreq(grid[1])[None, :] * yx[:, 1:]).astype(np.complex64)
    return np.asarray(ey[:, :, None] * ex[:, None, :], dtype=np.complex64)


def _drifting_frames(
    spectrum: np.ndarray, offsets: np.ndarray, height: int, width: int
) -> np.ndarray:
    """Frames of a periodic field translated by ``offsets`` (T, 2), cropped to height x width."""
    big = (spectrum.shape[0], 2 * (spectrum.shape[1] - 1))  # spectra made at an even width
    frames = np.empty((len(offsets), height, width), dtype=np.float32)
    for a in range(0, len(offsets), _CHUNK):
        ramp = _phase(big, -offsets[a : a + _CHUNK])
        frames[a : a + _CHUNK] = np.fft.irfft2(spectrum[None] * ramp, s=big)[:, :height, :width]
    return frames


def _field_shape(height: int, width: int) -> tuple[int, int]:
    """A periodic field 1.5 times the view (even width), which the view drifts across."""
    return height + height // 2, 2 * ((width + width // 2 + 1) // 2)


def _trajectory(rng: np.random.Generator, n: int, speed: float) -> np.ndarray:
    vel = np.stack([_smooth_noise(rng, n, 10.0), _smooth_noise(rng, n, 10.0)], axis=1)
    return np.cumsum(vel * speed, axis=0) + rng.uniform(0, 1000, 2)


def natural_movie(rng: np.random.Generator, height: int, width: int, n_frames: int) -> np.ndarray:
    """A natural-like movie (T, H, W): occluding 1/f layers drifting, with 0-2 scene cuts."""
    cuts = np.sort(
        rng.choice(
            np.arange(1, n_frames), size=min(rng.binomial(2, 0.3), n_frames - 1), replace=False
        )
    )
    video = np.empty((n_frames, height, width), dtype=np.float32)
    px = height / 36.0
    for start, stop in itertools.pairwise([0, *cuts, n_frames]):
        n = int(stop - start)
        alpha = np.array([rng.uniform(0.9, 1.3), rng.uniform(0.9, 1.3), 1.8])
        specs = _pink_spectra(rng, 3, _field_shape(height, width), alpha)
        back = _drifting_frames(
            specs[0], _trajectory(rng, n, rng.uniform(0.1, 0.6) * px), height, width
        )
        fore_path = _trajectory(rng, n, rng.uniform(0.2, 1.2) * px)
        fore = _drifting_frames(specs[1], fore_path, height, width)
        mask = _drifting_frames(specs[2], fore_path, height, width)
        lum = rng.uniform(60.0, 190.0, 2)
        con = rng.uniform(20.0, 60.0, 2)
        video[start:stop] = np.where(
            mask > rng.normal(0.0, 0.5), lum[0] + con[0] * fore, lum[1] + con[1] * back
        )
    return np.clip(video, 0.0, 255.0)


def _segments(rng: np.random.Generator, n_frames: int, low: int, high: int) -> list[slice]:
    edges = [0]
    while edges[-1] < n_frames:
        edges.append(min(n_frames, edges[-1] + int(rng.integers(low, high + 1))))
    return [slice(a, b) for a, b in itertools.pairwise(edges)]


def _gaussian_dots(rng: np.random.Generator, height: int, width: int, n_frames: int) -> np.ndarray:
    video = np.full((n_frames, height, width), 128.0, dtype=np.float32)
    yy, xx = np.arange(height)[:, None], np.arange(width)[None, :]
    for seg in _segments(rng, n_frames, 6, 10):
        frame = np.full((height, width), 128.0)
        for _ in range(int(rng.integers(1, 5))):
            sig = rng.uniform(2.0, 5.0) * height / 36.0
            cy, cx = rng.uniform(0, height), rng.uniform(0, width)
            frame += rng.choice([-100.0, 100.0]) * np.exp(
                -((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sig**2)
            )
        video[seg] = frame
    return video


def _drifting_grating(
    rng: np.random.Generator, height: int, width: int, n_frames: int
) -> np.ndarray:
    video = np.empty((n_frames, height, width), dtype=np.float32)
    yy, xx = np.arange(height)[:, None], np.arange(width)[None, :]
    for seg in _segments(rng, n_frames, 30, 60):
        theta = rng.uniform(0, 2 * np.pi)
        k = 2 * np.pi / (rng.uniform(8.0, 24.0) * height / 36.0)
        omega = 2 * np.pi * rng.uniform(1.0, 3.0) / FRAME_RATE
        t = np.arange(seg.stop - seg.start)[:, None, None]
        phase = k * (np.cos(theta) * xx + np.sin(theta) * yy)[None] - omega * t
        video[seg] = 128.0 + rng.uniform(40.0, 120.0) * np.sin(phase + rng.uniform(0, 2 * np.pi))
    return video


def ood_movie(
    rng: np.random.Generator, kind: str, height: int, width: int, n_frames: int
) -> np.ndarray:
    """An out-of-distribution clip (T, H, W) of one of :data:`OOD_TYPES`."""
    if kind == "gaussian_dots":
        video = _gaussian_dots(rng, height, width, n_frames)
    elif kind == "drifting_grating":
        video = _drifting_grating(rng, height, width, n_frames)
    elif kind == "static_image":
        video = np.repeat(natural_image(rng, height, width)[None], n_frames, axis=0)
    else:  # directional pink noise: one 1/f field drifting at a constant velocity
        spec = _pink_spectra(rng, 1, _field_shape(height, width), np.array([1.0]))[0]
        vel = rng.normal(0.0, 1.0, 2) * height / 36.0
        offsets = np.arange(n_frames)[:, None] * vel[None]
        video = 128.0 + 50.0 * _drifting_frames(spec, offsets, height, width)
    return np.asarray(np.clip(video, 0.0, 255.0), dtype=np.float32)


# ----------------------------------------------------------------------------- behaviour


def behavior_process(rng: np.random.Generator, n: int, dt: float) -> dict[str, np.ndarray]:
    """One continuous behaviour recording of ``n`` samples ``dt`` seconds apart.

    Returns pupil dilation, its derivative, running speed, the latent eye position (2, n) in
    standard deviations (horizontal, vertical) and the gain drives ``run_z`` and ``pupil_z``.
    """
    state = np.zeros(n)
    t, running = 0, bool(rng.random() < 0.3)
    while t < n:
        dur = int(rng.exponential(10.0 if running else 20.0) / dt) + 1
        state[t : t + dur] = float(running)
        t, running = t + dur, not running
    speed = state * (15.0 + 5.0 * _smooth_noise(rng, n, 2.0 / dt))
    run = _smoothed(speed, 1.0 / dt) + 0.5 * np.abs(_smooth_noise(rng, n, 0.3 / dt))
    arousal = 0.6 * _smooth_noise(rng, n, 20.0 / dt) + 1.5 * _smoothed(state, 3.0 / dt)
    pupil = (
        PUPIL_REF - 0.75 * PUPIL_SCALE + PUPIL_SCALE * arousal + 0.3 * _smooth_noise(rng, n, 1.0)
    )
    eye = np.zeros((2, n))
    t, target = 0, rng.normal(0.0, 1.0, 2)
    while t < n:
        dur = int(rng.exponential(3.0) / dt) + 1
        eye[:, t : t + dur] = target[:, None]
        t, target = t + dur, 0.6 * target + rng.normal(0.0, 0.8, 2)
    eye += 0.1 * np.stack([_smooth_noise(rng, n, 0.2 / dt), _smooth_noise(rng, n, 0.2 / dt)])
    return {
        "pupil": pupil,
        "dpupil": np.gradient(pupil, dt),
        "run": run,
        "eye": eye,
        "run_z": (run - RUN_REF) / RUN_SCALE,
        "pupil_z": (pupil - PUPIL_REF) / PUPIL_SCALE,
    }


def _smoothed(x: np.ndarray, tau: float) -> np.ndarray:
    klen = max(1, int(5 * tau))
    kernel = np.exp(-np.arange(klen) / max(tau, 1e-6))
    padded = np.r_[np.full(klen - 1, x[0]), x]
    return np.convolve(padded, kernel / kernel.sum(), mode="valid")


# ----------------------------------------------------------------------------- encoder


def _gabor_bank(grid: tuple[int, int], cfg: EncoderConfig) -> np.ndarray:
    """Spectra (2 * n_orientations * n_periods, h, w//2+1): even then odd channel per filter."""
    h, w = grid
    y = ((np.arange(h) + h // 2) % h - h // 2)[:, None].astype(np.float64)
    x = ((np.arange(w) + w // 2) % w - w // 2)[None, :].astype(np.float64)
    kernels = []
    for period in cfg.periods:
        env = np.exp(-(x**2 + y**2) / (2 * (cfg.envelope * period) ** 2))
        for theta in np.arange(cfg.n_orientations) * np.pi / cfg.n_orientations:
            arg = 2 * np.pi * (x * np.cos(theta) + y * np.sin(theta)) / period
            for carrier in (np.cos(arg), np.sin(arg)):
                k = env * carrier
                k -= env * (k.sum() / env.sum())
                kernels.append(k / np.sqrt((k**2).sum()))
    return np.fft.rfft2(np.array(kernels)).astype(np.complex64)


def grid_spectrum(frames: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Spectra on the encoder grid of 0-255 frames (B, H, W), band-limited resampling."""
    b, height, width = frames.shape
    spec = np.fft.rfft2((frames.astype(np.float32) - 127.5) / 64.0)
    h, w = grid
    if (height, width) == (h, w):
        return spec
    out = np.zeros((b, h, w // 2 + 1), dtype=np.complex64)
    rows, cols = min(h, height), min(w // 2 + 1, width // 2 + 1)
    top, bottom = (rows + 1) // 2, rows // 2
    out[:, :top, :cols] = spec[:, :top, :cols]
    if bottom:
        out[:, h - bottom :, :cols] = spec[:, height - bottom :, :cols]
    return out * np.float32(h * w / (height * width))


_MATMUL_MAX_NEURONS = 512


def _half_weights(grid: tuple[int, int]) -> np.ndarray:
    """Weights of the rfft half-plane: columns 0 and Nyquist once, the others twice."""
    h, w = grid
    c = np.full(w // 2 + 1, 2.0)
    c[0] = 1.0
    if w % 2 == 0:
        c[-1] = 1.0
    return np.broadcast_to(c / (h * w), (h, w // 2 + 1))


@dataclasses.dataclass
class Encoder:
    """Per-mouse ground-truth encoder; build it with :func:`make_encoder`.

    The spatial stage: a frame's grid spectrum is shifted by the eye (an exact Fourier shift,
    ``shift_scale`` grid pixels per standard deviation of eye position, the same for every
    neuron), filtered by the neuron's even and odd Gabor channels and read out at the neuron's
    fixed centre by bilinear interpolation. For few neurons this is one matrix product with
    per-neuron filter spectra; for many, feature maps by FFT and a gather. Both compute the same
    linear functional.
    """

    config: EncoderConfig
    grid: tuple[int, int]
    bank: np.ndarray
    params: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        h, w = self.grid
        center = self.params["rf_center"].astype(np.float64)
        y0, x0 = np.floor(center[:, 0]).astype(np.int64), np.floor(center[:, 1]).astype(np.int64)
        fy, fx = center[:, 0] - y0, center[:, 1] - x0
        corners = [
            (0, 0, (1 - fy) * (1 - fx)),
            (0, 1, (1 - fy) * fx),
            (1, 0, fy * (1 - fx)),
            (1, 1, fy * fx),
        ]
        self._corners = [((y0 + dy) % h * w + (x0 + dx) % w, wt) for dy, dx, wt in corners]
        if len(center) > _MATMUL_MAX_NEURONS:
            return
        filt = np.zeros((2, len(center), h, w // 2 + 1), dtype=np.complex128)
        for dy, dx, wt in corners:
            ramp = _phase(self.grid, np.stack([y0 + dy, x0 + dx], axis=1).astype(np.float64))
            filt += wt[None, :, None, None] * ramp[None]
        filt *= self.bank[np.stack([self.params["channel"], self.params["channel"] + 1])]
        filt *= _half_weights(self.grid)
        flat = filt.reshape(2 * len(center), -1).T
        self._readout = np.concatenate([flat.real, -flat.imag]).astype(np.float32)

    def spatial_drive(self, spectra: np.ndarray, eye: np.ndarray) -> np.ndarray:
        """Raw drive (B, n_neurons) of grid spectra (B, h, w//2+1) with eye positions (B, 2)."""
        return np.concatenate(
            [
                self._drive_chunk(spectra[i : i + _CHUNK], eye[i : i + _CHUNK])
                for i in range(0, len(spectra), _CHUNK)
            ]
        )

    def _drive_chunk(self, spectra: np.ndarray, eye: np.ndarray) -> np.ndarray:
        n = len(self.params["rf_center"])
        shift = self.config.shift_scale * np.asarray(eye, dtype=np.float64)[:, ::-1]  # (y, x)
        shifted = spectra.astype(np.complex64) * _phase(self.grid, shift)
        if hasattr(self, "_readout"):
            flat = shifted.reshape(len(spectra), -1)
            values = np.concatenate([flat.real, flat.imag], axis=1) @ self._readout
            even, odd = values[:, :n], values[:, n:]
        else:
            maps = np.fft.irfft2(shifted[:, None] * self.bank[None], s=self.grid)
            maps = maps.reshape(len(spectra), -1)
            even, odd = (self._bilinear(maps, c) for c in (0, 1))
        p = self.params
        simple = np.cos(p["rf_phase"]) * even + np.sin(p["rf_phase"]) * odd
        drive = np.where(p["is_complex"], np.sqrt(even**2 + odd**2), simple)
        return np.asarray(drive, dtype=np.float32)

    def _bilinear(self, maps: np.ndarray, odd: int) -> np.ndarray:
        """Read each neuron's even (odd=0) or odd (odd=1) channel at its centre from flat maps."""
        offset = (self.params["channel"] + odd) * (self.grid[0] * self.grid[1])
        out = np.zeros((len(maps), len(offset)), dtype=np.float32)
        for idx, wt in self._corners:
            out += wt.astype(np.float32) * maps[:, offset + idx]
        return out

    def temporal(self, drive: np.ndarray) -> np.ndarray:
        """Causal temporal filtering of a drive (T, n_neurons), first frame as pre-history."""
        kernel = self.params["temporal_kernel"]
        length = kernel.shape[1]
        padded = np.concatenate([np.repeat(drive[:1], length - 1, axis=0), drive])
        out = np.zeros_like(drive)
        for lag in range(length):
            out += kernel[:, lag] * padded[length - 1 - lag : length - 1 - lag + len(drive)]
        return out

    def rates(self, drive: np.ndarray, run_z: np.ndarray, pupil_z: np.ndarray) -> np.ndarray:
        """Noise-free rates (B, n_neurons) of a raw drive and behaviour drives (B,)."""
        p = self.params
        z = (drive - p["drive_mean"]) / p["drive_std"]
        log_gain = self.config.behavior_gain * (
            p["gain_weights"][:, 0] * run_z[:, None] + p["gain_weights"][:, 1] * pupil_z[:, None]
        )
        out = np.logaddexp(0.0, p["slope"] * (z - p["threshold"]))
        return np.asarray(p["amplitude"] * np.exp(np.clip(log_gain, -3, 3)) * out, dtype=np.float32)

    def sample(self, rng: np.random.Generator, rates: np.ndarray) -> np.ndarray:
        """Noisy responses: a Poisson number of events with gamma sizes (exact zeros when none).

        Mean ``rates``, variance ``fano * amplitude * rates`` per neuron.
        """
        shape = _EVENT_SHAPE
        size = self.params["fano"] * self.params["amplitude"] * shape / (1.0 + shape)
        events = rng.poisson(np.maximum(rates, 0.0) / size)
        return np.asarray(rng.gamma(shape * events, size / shape), dtype=np.float32)


def _temporal_kernels(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    t = np.arange(length)[None, :] - rng.integers(1, 4, n)[:, None]
    tau = rng.uniform(1.5, 3.0, n)[:, None]

    def bump(tc: np.ndarray) -> np.ndarray:
        return np.where(t >= 0, (t / tc) * np.exp(1 - t / tc), 0.0)

    k = bump(tau) - rng.uniform(0.0, 0.8, n)[:, None] * bump(2 * tau)
    return np.asarray(k / np.abs(k).sum(axis=1, keepdims=True), dtype=np.float32)


def make_encoder(
    rng: np.random.Generator,
    n_neurons: int,
    grid: tuple[int, int],
    cfg: EncoderConfig,
    temporal: bool,
) -> Encoder:
    """Draw one mouse's neurons (uncalibrated: call :func:`calibrate` before use)."""
    h, w = grid
    n_ori, n_per = cfg.n_orientations, len(cfg.periods)
    ori = rng.integers(0, n_ori, n_neurons)
    per = rng.integers(0, n_per, n_neurons)
    cortex = rng.random((n_neurons, 2))
    rf = np.stack(
        [
            h * (0.25 + 0.5 * cortex[:, 0]) + rng.normal(0, 0.6, n_neurons),
            w * (0.2 + 0.6 * cortex[:, 1]) + rng.normal(0, 1.0, n_neurons),
        ],
        axis=1,
    )
    is_complex = rng.random(n_neurons) < cfg.complex_fraction
    params: dict[str, np.ndarray] = {
        "cortex": cortex,
        "rf_center": np.clip(rf, 0, [h - 1.0001, w - 1.0001]).astype(np.float32),
        "rf_orientation": (ori * np.pi / n_ori).astype(np.float32),
        "rf_period": np.asarray(cfg.periods, dtype=np.float32)[per],
        "channel": 2 * (per * n_ori + ori),
        "is_complex": is_complex,
        "rf_phase": (rng.integers(0, 4, n_neurons) * np.pi / 2).astype(np.float32),
        "threshold": rng.normal(0.6, 0.5, n_neurons).astype(np.float32),
        "slope": rng.uniform(1.0, 2.5, n_neurons).astype(np.float32),
        "amplitude": rng.lognormal(0.0, 0.5, n_neurons).astype(np.float32),
        "fano": (cfg.fano * rng.lognormal(0.0, 0.3, n_neurons)).astype(np.float32),
        "gain_weights": np.stack(
            [rng.normal(1.0, 0.3, n_neurons), rng.normal(0.7, 0.3, n_neurons)], axis=1
        ).astype(np.float32),
    }
    if temporal:
        params["temporal_kernel"] = _temporal_kernels(rng, n_neurons, cfg.temporal_length)
    return Encoder(config=cfg, grid=grid, bank=_gabor_bank(grid, cfg), params=params)


def calibrate(encoder: Encoder, stimuli: list[np.ndarray]) -> None:
    """Set each neuron's drive mean and std from calibration stimuli (each (B, H, W) frames)."""
    drives = []
    for frames in stimuli:
        spectra = grid_spectrum(frames, encoder.grid)
        drive = encoder.spatial_drive(spectra, np.zeros((len(frames), 2)))
        drives.append(encoder.temporal(drive) if "temporal_kernel" in encoder.params else drive)
    allv = np.concatenate(drives)
    encoder.params["drive_mean"] = allv.mean(axis=0).astype(np.float32)
    encoder.params["drive_std"] = np.maximum(allv.std(axis=0), 1e-6).astype(np.float32)
