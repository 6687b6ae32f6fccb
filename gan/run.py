"""One training run as a library call, with no flags:

    from gan import config, run

    from gan import evaluator as evaluator_lib
    result = run.train(config.RunConfig().replace(num_steps=500, eval_every=0), "runs/x")

Leaves in the logdir: TensorBoard event files (scalars, the sample grid, the run's settings as a
flagfile text), samples/step_NNNNNN.png from one fixed noise batch, checkpoints/
(tf.train.CheckpointManager) and config.json. Training again in the same logdir resumes from
the latest checkpoint. `gan.train` is its command line.
"""

import ctypes
import dataclasses
import os
import signal
import threading
from typing import Optional

import tensorflow as tf

from gan import build, data, distribute, events, images, latent, networks, progress
from gan import rundir
from gan import evaluator as evaluator_lib
from gan import step as step_lib
from gan.errors import StopTraining

NONFINITE_EXIT_CODE = 3
AFTER_WRITE_FAILURE = ("The last complete checkpoint is intact; free space (or fix permissions) "
                       "and rerun the same command to resume.")


def fixed_noise(config, count):
    return latent.fixed(count, config.model.latent_dim, config.model.latent_distribution,
                        seed=[config.schedule.seed, latent.SAMPLE_GRID_SALT])


def grid_labels(generator, grid_size):
    """A conditional G's labels for a grid: row r shows class r mod num_classes (None otherwise)."""
    if not generator.num_classes:
        return None
    return tf.constant(images.row_labels(grid_size, grid_size, generator.num_classes))


def sample_grid(generator, noise, grid_size):
    samples = generator(noise, training=False, labels=grid_labels(generator, grid_size))
    return images.make_grid(images.to_uint8(samples.numpy()), grid_size, grid_size)


def return_freed_memory():
    """Hands the heap pages glibc keeps after large frees back to the OS. Compiling the training
    loop frees about 190 MiB that would otherwise stay resident for the whole run (and an
    evaluation frees its own buffers), so each later stage's peak stacks on it. A no-op without
    glibc."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@dataclasses.dataclass
class TrainResult:
    """What `train` returns: the step reached, the last logged training scalars, the last
    evaluation's metrics (None without evaluation), the signal that stopped it, if any, and how
    many times it rolled back after a non-finite value."""
    step: int
    train_metrics: dict
    eval_metrics: Optional[dict] = None
    stopped_by: Optional[str] = None
    rollbacks: int = 0


class Run:
    """One training run: state, compiled trainer, writers; `train()` drives the loop."""

    def __init__(self, config, logdir, strategy=None, resume_from=None):
        """`logdir`: where this process writes (see `distribute.worker_dir`); `resume_from`: the
        run directory whose checkpoints a start resumes from (default: logdir)."""
        self.config = config
        self.logdir = logdir
        self.resume_from = resume_from or logdir
        self.strategy = strategy or tf.distribute.get_strategy()
        self.chief = distribute.is_chief(self.strategy)
        schedule, output = config.schedule, config.output
        dataset = data.load(config.data.dataset, "train", config.data.data_dir)
        if schedule.batch_size > dataset.num_examples:
            raise StopTraining(f"--batch_size={schedule.batch_size} is larger than the "
                               f"{dataset.num_examples} training images of "
                               f"{config.data.dataset}; expected at most that many", 2)
        replicas = self.strategy.num_replicas_in_sync
        if schedule.batch_size % replicas:
            raise StopTraining(f"--batch_size={schedule.batch_size} does not split evenly over the "
                               f"{replicas} replicas of --strategy={config.runtime.strategy}; "
                               f"expected a multiple of {replicas}", 2)
        with self.strategy.scope():
            self.state = build.make_state(config)
        self.trainer = step_lib.Trainer(self.state, config, dataset.pixels, dataset.labels,
                                        jit_compile=build.jit_compile(config),
                                        strategy=self.strategy)
        print(f"generator: {networks.count_parameters(self.state.generator):,} parameters; "
              f"discriminator: {networks.count_parameters(self.state.discriminator):,}; "
              f"XLA {'on' if self.trainer.jit_compile else 'off'}; "
              f"{distribute.describe(self.strategy)}"
              + ("; samples and evaluation use G's moving average"
                 if config.model.g_ema_decay > 0 else ""), flush=True)
        self.checkpoint = tf.train.Checkpoint(state=self.state)
        repaired = rundir.repair_checkpoint_state(logdir) if self.chief else None
        if repaired:
            print(repaired, flush=True)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, rundir.checkpoint_dir(logdir),
            max_to_keep=output.keep_checkpoints, step_counter=self.state.step)
        self.writer = None  # opened by `restore`, once the events a resume repeats are purged
        self.noise = fixed_noise(config, output.grid_size ** 2)
        self.evaluator = None
        if output.eval_every > 0 and self.chief:
            self.evaluator = evaluator_lib.Evaluator(config.data.dataset, output.eval_num_samples,
                                                     config.data.data_dir)
            self.best_manager = tf.train.CheckpointManager(
                self.checkpoint, os.path.join(logdir, rundir.BEST_CHECKPOINT_SUBDIR),
                max_to_keep=1, step_counter=self.state.step)
        self.stop_signal = None
        self.rollbacks = 0
        self.last_train_metrics = {}
        self.last_eval = None

    def restore(self):
        path = rundir.restore(self.state, self.resume_from, fall_back=True)
        step = int(self.state.step.numpy())
        if path:
            print(f"Resumed from {path} at step {step}", flush=True)
        # What a killed process logged after its last checkpoint is about to be logged again.
        # Step 0 stays: it holds what precedes training (and a study's HParams record).
        self.purge_events_after(step)
        return path

    def purge_events_after(self, step):
        if not self.chief:  # only the chief writes events
            self.writer = tf.summary.create_noop_writer()
            return
        if self.writer is not None:
            self.writer.close()  # it holds nothing past `step`; reopened below as a new file
        removed = events.purge_after(self.logdir, step)
        self.writer = tf.summary.create_file_writer(self.logdir)
        if removed:
            print(f"removed {removed} TensorBoard records past step {step}, which this run "
                  "logs again", flush=True)

    def apply_changed_learning_rates(self, previous):
        """The checkpoint holds each optimizer's current learning rate (lowered by roll-backs);
        a learning-rate setting changed since the previous run overrides it."""
        for prefix, optimizer in (("g", self.state.g_optimizer), ("d", self.state.d_optimizer)):
            old = getattr(previous, f"{prefix}_opt").learning_rate
            new = getattr(self.config, f"{prefix}_opt").learning_rate
            if old != new:
                optimizer.learning_rate.assign(new)
                print(f"--{prefix}_learning_rate changed from {old} to {new}; using it",
                      flush=True)

    def save_checkpoint(self, step):
        self.state.fit_ema_batchnorm()  # what sample.py, export.py and evaluate.py will load
        try:
            return self.manager.save(checkpoint_number=step)
        except (OSError, tf.errors.OpError) as e:
            # TensorFlow writes a checkpoint under temporary names and renames it when complete,
            # and updates the `checkpoint` index last, so the previous checkpoint stays usable;
            # what it left of this one goes.
            rundir.remove_partial_checkpoint(rundir.checkpoint_dir(self.logdir), step)
            raise StopTraining(f"could not write the checkpoint for step {step} in "
                               f"{rundir.checkpoint_dir(self.logdir)}: {e}. "
                               f"{AFTER_WRITE_FAILURE}") from None

    def write_samples(self, step):
        if not self.chief:
            return
        self.state.fit_ema_batchnorm()
        grid = sample_grid(self.state.sampling_generator, self.noise, self.config.output.grid_size)
        images.write_png(os.path.join(self.logdir, "samples", f"step_{step:06d}.png"), grid)
        with self.writer.as_default(step=step):
            tf.summary.image("samples", grid[None])

    def write_scalars(self, step, metrics, steps_per_sec):
        with self.writer.as_default(step=step):
            for name, value in metrics.items():
                tf.summary.scalar(f"train/{name}", value)
            tf.summary.scalar("train/g_learning_rate", self.state.g_optimizer.learning_rate)
            tf.summary.scalar("train/d_learning_rate", self.state.d_optimizer.learning_rate)
            tf.summary.scalar("perf/steps_per_sec", steps_per_sec)

    def evaluate(self, step):
        self.state.fit_ema_batchnorm()
        results = evaluator_lib.evaluate_state(self.evaluator, self.state)
        # With a moving average, G itself is scored on the same samples' noise too: the pair
        # of one run is the exact comparison of averaging (eval/raw/<metric>).
        raw = (evaluator_lib.evaluate_state(self.evaluator, self.state, which="raw")
               if results["generator"] == "ema" else {})
        with self.writer.as_default(step=step):
            for name in evaluator_lib.METRICS:
                if name in results:
                    tf.summary.scalar(f"eval/{name}", results[name])
                if name in raw:
                    tf.summary.scalar(f"eval/raw/{name}", raw[name])
        best = rundir.read_best(self.logdir)
        if best is None or results["fid"] < best["fid"]:
            path = self.best_manager.save(checkpoint_number=step)
            rundir.write_best(self.logdir, {"step": step, "fid": results["fid"],
                                            "checkpoint": os.path.basename(path)})
        self.last_eval = dict(results, step=step)
        print(f"eval at step {step} ({results['generator']} generator): "
              f"{evaluator_lib.format_metrics(results)}", flush=True)
        if raw:
            print(f"eval at step {step} (raw generator): {evaluator_lib.format_metrics(raw)}",
                  flush=True)
        return_freed_memory()

    def handle_nonfinite(self, metrics):
        """Stops (the default) or rolls back to the last checkpoint with lower learning rates."""
        runtime = self.config.runtime
        step = int(self.state.step.numpy())
        bad = [label for key, label in (("d_loss_finite", "discriminator loss"),
                                        ("g_loss_finite", "generator loss"),
                                        ("d_grad_norm_finite", "discriminator gradients"),
                                        ("g_grad_norm_finite", "generator gradients"))
               if not bool(metrics[key])]
        what = f"non-finite {', '.join(bad)} at step {step}"
        last = self.manager.latest_checkpoint
        if runtime.on_nonfinite == "stop":
            raise StopTraining(
                f"{what}. Nothing was saved after it; the last good checkpoint is "
                f"{last or 'none'}. Lower the learning rates, or use --on_nonfinite=rollback.",
                NONFINITE_EXIT_CODE)
        if self.rollbacks >= runtime.max_rollbacks:
            raise StopTraining(
                f"{what} after {self.rollbacks} roll-backs. Nothing was saved after it; the last "
                f"good checkpoint is {last}. Lower the learning rates, or allow more with "
                "--max_rollbacks or a smaller --rollback_lr_factor.", NONFINITE_EXIT_CODE)
        optimizers_in_use = (self.state.g_optimizer, self.state.d_optimizer)
        rates_in_use = [float(o.learning_rate.numpy()) for o in optimizers_in_use]
        self.checkpoint.restore(last).assert_existing_objects_matched()
        self.rollbacks += 1
        restored_step = int(self.state.step.numpy())
        self.purge_events_after(restored_step)
        lines = []
        # Lower the rates that diverged, not the older ones the checkpoint holds.
        for optimizer, rate in zip(optimizers_in_use, rates_in_use):
            optimizer.learning_rate.assign(rate * runtime.rollback_lr_factor)
            rate = float(optimizer.learning_rate.numpy())
            lines.append(f"{optimizer.name} learning rate -> {rate:.3g}")
        message = (f"{what}: rolled back to {last} (step {restored_step}); "
                   + "; ".join(lines))
        print(message, flush=True)
        # At the step it went back to: a later roll-back to an earlier step would purge it.
        with self.writer.as_default(step=restored_step):
            tf.summary.text("rollback", message)
        return restored_step

    def train(self):
        """Trains to num_steps (or a stop signal); returns a TrainResult."""
        num_steps = self.config.schedule.num_steps
        step = int(self.state.step.numpy())
        if step == 0:
            self._start()
        clock = progress.LogClock(step)
        window = []  # (metric means of one call, its iteration count) since the last log
        compiled = False
        while step < num_steps:
            if self.stop_signal is not None:
                self.save_checkpoint(step)
                self.writer.flush()
                return TrainResult(step, self.last_train_metrics, self.last_eval,
                                   self.stop_signal, self.rollbacks)
            chunk_end = self._chunk_end(step)
            metrics = self.trainer.run(chunk_end - step)
            if not compiled:
                return_freed_memory()
                compiled = True
            # One scalar fetch per call (not per iteration): did the loop stop on a bad value?
            if not bool(metrics["all_finite"]):
                step = self.handle_nonfinite(metrics)
                window, clock = [], clock.restarted(step)
                continue
            window.append((metrics, chunk_end - step))
            step = chunk_end
            if step % self.config.output.log_every == 0 or step == num_steps:
                self._log(step, progress.window_means(window), clock)
                window = []
            self._at_boundaries(step)
        self.writer.flush()
        return TrainResult(step, self.last_train_metrics, self.last_eval,
                           rollbacks=self.rollbacks)

    def _start(self):
        """What precedes training: the flags in TensorBoard, and with roll-backs a checkpoint
        at step 0, so that a divergence before the first one rolls back."""
        with self.writer.as_default(step=0):
            tf.summary.text("flags", "```\n" + self.config.to_flagfile() + "```")
        if (self.config.runtime.on_nonfinite == "rollback"
                and self.manager.latest_checkpoint is None):
            self.save_checkpoint(0)

    def _chunk_end(self, step):
        """Where the next compiled call stops: the nearest step that logs, samples, checkpoints
        or evaluates, at most steps_per_loop away."""
        output, num_steps = self.config.output, self.config.schedule.num_steps
        return min(num_steps, step + self.config.runtime.steps_per_loop,
                   progress.next_boundary(step, output.log_every),
                   progress.next_boundary(step, output.sample_every),
                   progress.next_boundary(step, output.checkpoint_every),
                   progress.next_boundary(step, output.eval_every or num_steps))

    def _log(self, step, values, clock):
        num_steps = self.config.schedule.num_steps
        steps_per_sec, eta = clock.tick(step, num_steps)
        self.write_scalars(step, values, steps_per_sec)
        self.last_train_metrics = values
        print(progress.console_line(step, num_steps, values, steps_per_sec, eta), flush=True)

    def _at_boundaries(self, step):
        output, num_steps = self.config.output, self.config.schedule.num_steps
        if step % output.sample_every == 0 or step == num_steps:
            self.write_samples(step)
        if self.evaluator and (step % output.eval_every == 0 or step == num_steps):
            self.evaluate(step)
        if step % output.checkpoint_every == 0 or step == num_steps:
            self.save_checkpoint(step)


def train(config, logdir, restart=False, handle_signals=False):
    """Runs (or resumes) a whole training in this process; returns a TrainResult.

    Holds the logdir's writer lock throughout (a second writer gets StopTraining); under
    --strategy=multi_worker, a worker other than the chief writes in its own subfolder of it (see
    `gan.distribute`). Raises config.ConfigError for settings that cannot be trained,
    data.DataError for missing or damaged data, StopTraining (with an exit code) for a run that
    cannot go on, and OSError when a file cannot be written. With `handle_signals`, SIGINT and
    SIGTERM write a checkpoint and return (`stopped_by` names the signal); only the main thread
    can install the handlers.
    """
    config.validate()
    # First: logical CPU devices and the multi-worker runtime must be set up before TensorFlow
    # starts its own.
    try:
        strategy = distribute.make_strategy(config.runtime)
    except distribute.StrategyError as e:
        raise StopTraining(str(e), 2) from None
    if config.runtime.deterministic:
        tf.config.experimental.enable_op_determinism()
    run_dir, logdir = logdir, distribute.worker_dir(logdir, strategy)
    rundir.make_writable_logdir(logdir)
    lock = rundir.LogdirLock(logdir)
    try:
        stale = lock.acquire()
    except rundir.LogdirLocked as e:
        raise StopTraining(str(e), 2) from None
    try:
        if stale:
            print(f"took over the writer lock of {logdir} from pid {stale.get('pid')} on host "
                  f"{stale.get('host')}, which stopped without releasing it", flush=True)
        previous = rundir.prepare_logdir(logdir, config, restart)
        # A worker other than the chief resumes from the chief's checkpoints (on a shared file
        # system), unless the run restarts.
        run = Run(config, logdir, strategy, resume_from=logdir if restart else run_dir)
        try:
            restored = run.restore()
        except rundir.CheckpointError as e:
            raise StopTraining(f"{e}. Pass --restart to start over (the old run is kept)",
                               2) from None
        if restored and previous:
            run.apply_changed_learning_rates(previous)
        if handle_signals and threading.current_thread() is threading.main_thread():
            def on_signal(signum, frame):
                run.stop_signal = signal.Signals(signum).name
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, on_signal)
        return run.train()
    finally:
        lock.release()
