"""The bookkeeping of a training's progress: which step the next compiled call stops at, the
means of the metrics logged, the console line and the speed it reports."""

import time

import tensorflow as tf


def window_means(window):
    """Means over all iterations of a list of (per-call metric means, iteration count)."""
    total = sum(count for _, count in window)
    names = [name for name, value in window[0][0].items() if value.dtype == tf.float32]
    return {name: sum(float(metrics[name]) * count for metrics, count in window) / total
            for name in names}


def next_boundary(step, every):
    return (step // every + 1) * every


def console_line(step, num_steps, values, steps_per_sec, eta):
    """D(x) and D(G(z)) for losses whose logits are log-odds; the logit gap for the others."""
    if "d_real_prob" in values:
        verdict = f"D(x) {values['d_real_prob']:.3f}  D(G(z)) {values['d_fake_prob']:.3f}"
    else:
        verdict = f"logit gap {values['d_logit_gap']:.3f}"
    return (f"step {step:>7d}/{num_steps}  d_loss {values['d_loss']:.4f}  "
            f"g_loss {values['g_loss']:.4f}  {verdict}  {steps_per_sec:.1f} steps/s  "
            f"ETA {eta:.0f}s")


class LogClock:
    """Training speed for the console and TensorBoard: steps/s since the last log, and the ETA
    from the speed since the process started (or last rolled back)."""

    def __init__(self, step):
        self.start_time = self.last_time = time.time()
        self.start_step = self.last_step = step

    def restarted(self, step):
        clock = LogClock(step)
        clock.start_time, clock.start_step = self.start_time, self.start_step
        return clock

    def tick(self, step, num_steps):
        """(steps/s since the last tick, seconds left at the speed since the start)."""
        now = time.time()
        steps_per_sec = (step - self.last_step) / max(now - self.last_time, 1e-9)
        self.last_time, self.last_step = now, step
        overall = (step - self.start_step) / max(now - self.start_time, 1e-9)
        return steps_per_sec, (num_steps - step) / max(overall, 1e-9)
