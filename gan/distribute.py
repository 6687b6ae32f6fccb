"""Where a run trains: TensorFlow's own `tf.distribute` strategies (`--strategy`).

  default       one device (TensorFlow's default strategy: no replicas, the XLA-compiled loop).
  mirrored      every GPU of this machine (`tf.distribute.MirroredStrategy`), or, with
                --cpu_replicas=N, N logical devices carved out of the CPU (how this project tests
                distribution on a CPU-only machine).
  multi_worker  several machines (`tf.distribute.MultiWorkerMirroredStrategy`), each running the
                same command with its own TF_CONFIG (see BUILD.md).
  tpu           a Cloud TPU (`tf.distribute.TPUStrategy`) at --tpu.

--batch_size is the global batch: the trainer gives each replica an equal slice of it and averages
the gradients, so results do not depend on the replica count (see `gan.loop`).

Under multi_worker, every worker runs the whole program, and only the chief (task "chief", or
worker 0 when there is none) writes the run: events, samples, evaluations, config.json and the
checkpoints of --logdir. Another worker keeps its own copy of the checkpoints (whose saving may
take part in collective operations) in <logdir>/worker-<index>/, and resumes from the chief's.
"""

import json
import os

import tensorflow as tf

from gan.errors import StrategyError

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def configure_cpu_replicas(count):
    """Splits the CPU into `count` logical devices (once per process, before TensorFlow starts its
    runtime); returns their names."""
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError:  # the runtime has started (listing logical devices starts it)
        logical = tf.config.list_logical_devices("CPU")
        if len(logical) != count:
            raise StrategyError(
                f"--cpu_replicas={count}: this process's TensorFlow runtime already started with "
                f"{len(logical)} CPU device(s), and logical devices can only be set before it "
                "starts; run the training in a fresh process") from None
    return [device.name for device in tf.config.list_logical_devices("CPU")]


# One strategy per placement per process: two MirroredStrategy objects over the same devices
# number their collective operations independently, and the second one's all-reduces then meet
# the first one's under the same keys ("Shape mismatch in the collective instance"), e.g. when a
# notebook or a test calls train() twice.
_STRATEGIES = {}


def make_strategy(runtime):
    """The tf.distribute.Strategy of a RuntimeConfig (--strategy, --cpu_replicas, --tpu); the
    same object for the same placement within a process."""
    key = (runtime.strategy, runtime.cpu_replicas, runtime.tpu)
    if key not in _STRATEGIES:
        _STRATEGIES[key] = _new_strategy(runtime)
    return _STRATEGIES[key]


def _new_strategy(runtime):
    name = runtime.strategy
    if runtime.cpu_replicas and name not in ("mirrored", "multi_worker"):
        raise StrategyError(f"--cpu_replicas={runtime.cpu_replicas} splits the CPU for "
                            f"--strategy=mirrored or multi_worker; --strategy is {name}")
    if name == "tpu" and not runtime.tpu:
        raise StrategyError("--strategy=tpu needs --tpu=ADDRESS (a TPU name, grpc://host:port, "
                            "or 'local')")
    if runtime.tpu and name != "tpu":
        raise StrategyError(f"--tpu={runtime.tpu} is only read with --strategy=tpu; --strategy is "
                            f"{name}")
    if name == "default":
        return tf.distribute.get_strategy()
    # Their tracing logs every all-reduce at INFO; the console keeps training's own lines.
    tf.get_logger().setLevel("WARNING")
    if name == "mirrored":
        devices = configure_cpu_replicas(runtime.cpu_replicas) if runtime.cpu_replicas else None
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        cluster = cluster_spec()
        if runtime.cpu_replicas:
            configure_cpu_replicas(runtime.cpu_replicas)
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        if cluster is None:
            print("--strategy=multi_worker without TF_CONFIG: one worker, this machine's devices",
                  flush=True)
        return strategy
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=runtime.tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def cluster_spec():
    """TF_CONFIG's content (None when unset); a malformed one is a StrategyError naming it."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        return None
    try:
        value = json.loads(text)
        cluster, task = value["cluster"], value["task"]
        task_type, index = task["type"], int(task["index"])
        if index >= len(cluster[task_type]):
            raise KeyError("task index")
    except (ValueError, KeyError, TypeError) as e:
        raise StrategyError(
            f"TF_CONFIG is not a valid cluster description ({type(e).__name__}: {e}); expected "
            '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", '
            f'"index": N}}}}, found {text!r}') from None
    return value


def task(strategy):
    """(task type, index) of this process in its cluster; ("chief", 0) outside multi-worker."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return "chief", 0
    return resolver.task_type or "chief", resolver.task_id or 0


def is_chief(strategy):
    task_type, index = task(strategy)
    if task_type == "chief":
        return True
    resolver = strategy.cluster_resolver
    has_chief = "chief" in (resolver.cluster_spec().as_dict() if resolver else {})
    return task_type == "worker" and index == 0 and not has_chief


def worker_dir(logdir, strategy):
    """Where this process writes: the logdir for the chief, <logdir>/worker-<index> otherwise."""
    if is_chief(strategy):
        return logdir
    task_type, index = task(strategy)
    return os.path.join(logdir, f"{task_type}-{index}")


def describe(strategy):
    """A line for the console: the strategy, its replicas and devices."""
    name = type(strategy).__name__
    if name == "_DefaultDistributionStrategy":
        return "one device"
    devices = getattr(strategy.extended, "worker_devices", ())
    return (f"{name}, {strategy.num_replicas_in_sync} replicas"
            + (f" ({', '.join(devices)})" if devices else ""))
