"""The run schema: one declaration per setting, and what is derived from it."""

import json
import os

from absl import flags
import numpy as np
import pytest

from gan import config, losses, penalties, rundir
from gan import build
from gan import run as run_lib
from helpers import REPO, checkpoint_values

OLD_CONFIG = os.path.join(REPO, "tests", "data", "config_v0.1.0_seed.json")


def parsed(*args):
    """A fresh FlagValues holding the schema's flags, parsed from args."""
    values = flags.FlagValues()
    config.define_flags(values)
    values(["prog", *args])
    return values


def test_every_setting_is_a_flag_with_help_and_its_default():
    values = parsed()
    defaults = config.RunConfig().to_flat()
    assert set(defaults) == set(config.SETTINGS)
    for name, default in defaults.items():
        assert values[name].help and len(values[name].help) > 10, name
        flag_default = values[name].value
        if isinstance(default, tuple):
            flag_default = tuple(int(v) for v in flag_default)
        assert flag_default == default, name


def test_each_penalty_in_the_registry_gets_a_weight_flag_defaulting_to_off():
    game = config.GameConfig()
    for name, penalty in penalties.PENALTIES.items():
        assert getattr(game, f"{name}_weight") == 0.0
        assert config.SETTINGS[f"{name}_weight"].help == penalty.help
    assert config.penalty_weights(config.RunConfig().replace(r1_weight=2.0).game) == {"r1": 2.0}


def test_flagfile_and_flat_dict_give_the_same_config():
    from_file = config.from_flagfile(os.path.join(REPO, "experiments", "seed.flags"))
    assert from_file.schedule.batch_size == 32 and from_file.game.d_update == "split"
    assert from_file.model.g_hidden == (256, 512, 1024)
    assert config.RunConfig.from_flat(from_file.to_flat()) == from_file
    assert config.RunConfig.from_flat(json.loads(json.dumps(
        config.to_json_value(from_file.to_flat())))) == from_file


def test_to_flagfile_reproduces_the_config(tmp_path):
    original = config.from_flagfile(os.path.join(REPO, "experiments", "mlp_wgan_gp.flags"),
                                    data_dir="/somewhere", deterministic=True)
    path = tmp_path / "again.flags"
    path.write_text(original.to_flagfile())
    assert config.from_flagfile(str(path)) == original


def test_config_json_of_the_previous_version_still_loads(tmp_path):
    """tests/data/config_v0.1.0_seed.json was written by gan.train before the schema existed."""
    with open(OLD_CONFIG) as f:
        old = json.load(f)
    assert "gp_weight" not in old and "log_every" not in old
    (tmp_path / "config.json").write_text(json.dumps(old))
    loaded = rundir.load_config(str(tmp_path))
    assert loaded == config.from_flagfile(os.path.join(REPO, "experiments", "seed.flags"))
    assert loaded.game.gp_weight == 0.0 and loaded.output.log_every == 100


def test_invalid_values_get_one_line_each_naming_the_flag():
    with pytest.raises(config.ConfigError) as error:
        config.RunConfig().replace(batch_size=0, g_learning_rate=-1.0, d_beta1=1.0,
                                   g_hidden=("64", "x"), d_loss="bce", gp_weight=-1.0,
                                   penalty_every=0, label_smoothing=1.0, deterministic="yes",
                                   jit_compile="yes")
    assert sorted(error.value.lines) == sorted([
        "--batch_size=0: expected an integer in [1, 1048576]",
        "--g_learning_rate=-1.0: expected a value > 0",
        "--d_beta1=1.0: expected a value in [0, 1)",
        "--g_hidden=64,x: expected a comma-separated list of integers in [1, 65536], e.g. 256,512",
        f"--d_loss=bce: expected one of {', '.join(sorted(losses.D_LOSSES))}",
        "--gp_weight=-1.0: expected a value >= 0",
        "--penalty_every=0: expected an integer >= 1",
        "--label_smoothing=1.0: expected a value in [0, 1)",
        "--deterministic=yes: expected true or false",
        "--jit_compile=yes: expected one of auto, true, false",
    ])
    with pytest.raises(config.ConfigError, match="--eval_every=-1: expected an integer >= 0 "
                                                 r"\(0 turns evaluation off\)"):
        config.RunConfig().replace(eval_every=-1)
    with pytest.raises(config.ConfigError, match="unknown setting 'learning_rate'"):
        config.RunConfig().replace(learning_rate=0.1)


def test_known_broken_combinations_are_refused_unless_allowed():
    wgan = config.RunConfig().replace(d_loss="wasserstein", g_loss="wasserstein")
    with pytest.raises(config.ConfigError, match="critic is unconstrained.*--allow_unstable"):
        wgan.validate()
    wgan.replace(allow_unstable=True).validate()
    wgan.replace(gp_weight=10.0).validate()
    wgan.replace(weight_clip=0.01).validate()
    with pytest.raises(config.ConfigError, match="expected --g_loss=relativistic_average"):
        config.RunConfig().replace(d_loss="relativistic_average").validate()
    # Settings that cannot work at all are refused even with --allow_unstable.
    with pytest.raises(config.ConfigError, match="expected --d_update=joint"):
        config.RunConfig().replace(d_loss="relativistic", g_loss="relativistic",
                                   d_update="split", allow_unstable=True).validate()


def test_structural_settings_come_from_the_schema():
    assert set(config.STRUCTURAL_SETTINGS) == {
        "dataset", "architecture", "latent_dim", "latent_distribution", "g_hidden", "d_hidden",
        "dcgan_width", "dcgan_d_width", "g_norm", "d_norm", "conditional", "g_conditioning",
        "d_conditioning", "g_optimizer", "d_optimizer"}
    base = config.RunConfig()
    assert build.structural_differences(base, base.replace(
        g_learning_rate=1e-3, d_loss="hinge", g_loss="hinge", gp_weight=1.0, num_steps=5)) == []
    assert build.structural_differences(base, base.replace(latent_dim=50, g_hidden=(8,))) == [
        "latent_dim: checkpoint has 100, this run has 50",
        "g_hidden: checkpoint has [256, 512, 1024], this run has [8]"]
    sgd = base.replace(g_optimizer="sgd", g_momentum=0.9)
    assert build.structural_differences(sgd, sgd.replace(g_momentum=0.5)) == []
    assert "['velocity'] to []" in build.structural_differences(sgd, sgd.replace(g_momentum=0.0))[0]
    # G's moving average may change its decay, but not appear or disappear.
    ema = base.replace(g_ema_decay=0.999)
    assert build.structural_differences(ema, ema.replace(g_ema_decay=0.99)) == []
    assert build.structural_differences(base, ema) == [
        "g_ema_decay: checkpoint has 0.0, this run has 0.999, which would add the generator's "
        "moving average"]


def test_architecture_defaults_and_older_configs():
    """bn_momentum and jit_compile default to the architecture's own; a config.json of version
    0.2 (jit_compile a boolean) still loads."""
    mlp, dcgan = config.RunConfig(), config.RunConfig().replace(architecture="dcgan")
    assert mlp.model.bn_momentum is None
    assert build.jit_compile(mlp) and not build.jit_compile(dcgan)
    assert build.jit_compile(dcgan.replace(jit_compile="true"))
    flat = mlp.to_flat()
    flat["jit_compile"] = False
    assert config.RunConfig.from_flat(flat).runtime.jit_compile == "false"
    with pytest.raises(config.ConfigError, match="--bn_momentum=1.5: expected a value in"):
        mlp.replace(bn_momentum=1.5)


def test_train_runs_in_process_without_flags(tmp_path):
    """gan.train.train(config, logdir) needs no absl parsing (FLAGS stay unparsed here, so any
    read of them would raise), trains on the real MNIST, and resumes in-process."""
    assert not flags.FLAGS.is_parsed()
    small = config.from_flagfile(os.path.join(REPO, "experiments", "mlp_ns_r1.flags"),
                                 g_hidden=(32, 64), d_hidden=(64, 32), batch_size=16,
                                 num_steps=40, log_every=20, sample_every=40,
                                 checkpoint_every=20, eval_every=0, steps_per_loop=10,
                                 jit_compile="false")
    logdir = str(tmp_path / "run")
    result = run_lib.train(small, logdir)
    assert not flags.FLAGS.is_parsed()
    assert result.step == 40 and result.stopped_by is None and result.eval_metrics is None
    assert result.train_metrics["penalty_r1"] > 0 and np.isfinite(result.train_metrics["d_loss"])
    assert rundir.load_config(logdir) == small
    assert os.path.exists(os.path.join(logdir, "samples", "step_000040.png"))
    before = checkpoint_values(os.path.join(logdir, "checkpoints", "ckpt-40"))

    longer = run_lib.train(small.replace(num_steps=60), logdir)
    assert longer.step == 60
    resumed = checkpoint_values(os.path.join(logdir, "checkpoints", "ckpt-60"))
    assert any(not np.array_equal(before[k], resumed[k]) for k in before if "kernel" in k)
    with pytest.raises(config.ConfigError, match="critic is unconstrained"):
        run_lib.train(small.replace(d_loss="wasserstein", g_loss="wasserstein", r1_weight=0.0),
                      str(tmp_path / "refused"))
    assert not os.path.exists(tmp_path / "refused")
