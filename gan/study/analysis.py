"""A study's declared analysis as results.md's section: each configuration against the baseline
(or every pair), with the difference, its Welch interval, Holm-adjusted p-values and one verdict;
and, for a study with several axes, the factorial ANOVA and each level's effect."""

from gan.study import stats
from gan.study.sections import ALL_PAIRS, RAW_GENERATOR, Analysis

PER_COMPARISON = (", fitted for each comparison to the baseline's and that configuration's "
                  "runs alone")
RAW_FID = "eval/raw/fid"  # G's own FID, beside its moving average's (eval/fid)

METRIC_NAMES = {"fid_final": "final FID", "fid_best": "best FID",
                "fid_budget": "FID at the last budget"}
# unit: (its name on an axis, the record's cost per step in it; None: the step itself)
UNITS = {"steps": ("steps", None), "images": ("real images seen", "images_per_step"),
         "seconds": ("training seconds", "seconds_per_step"), "flops": ("FLOPs", "flops_per_step")}


def per_step(row, unit):
    """What one iteration of a run costs in `unit` (None when its record does not say)."""
    key = UNITS[unit][1]
    return 1.0 if key is None else (row.get("compute") or {}).get(key)


def fid_at(row, budget, unit):
    """A finished run's FID at its last evaluation within `budget` (in `unit`), or None. A
    record without curves knows its final evaluation only."""
    scale = per_step(row, unit)
    points = row.get("fid_curve") or (
        [(row["eval_step"], row["fid_final"])] if row.get("eval_step", "") != ""
        and row.get("fid_final", "") != "" else [])
    if not scale or row["status"] != "done":
        return None
    within = [value for step, value in points if step * scale <= budget * (1 + 1e-9)]
    return within[-1] if within else None


def add_budgets(study, rows):
    """Sets each row's FID at the declared budgets (row["fid_at"]) and at the last of them
    (row["fid_budget"], "" when it has none)."""
    analysis = declared(study)
    for row in rows:
        row["fid_at"] = {b: fid_at(row, b, analysis.unit) for b in analysis.budgets}
        last = row["fid_at"].get(analysis.budgets[-1]) if analysis.budgets else None
        row["fid_budget"] = "" if last is None else last


def budget_lines(study, rows):
    """The table of FID at each declared budget, per configuration."""
    analysis = declared(study)
    if not analysis.budgets:
        return []
    name = UNITS[analysis.unit][0]
    header = [f"{b:g} {name}" for b in analysis.budgets]
    lines = ["", f"FID at each declared budget ({name}; a run's last evaluation within it; mean "
             "± sd, n):", "", "| configuration | " + " | ".join(header) + " |",
             "|" + " --- |" * (len(header) + 1)]
    for config, group in group_by_config(rows).items():
        cells = []
        for budget in analysis.budgets:
            values = [row["fid_at"][budget] for row in group if row["fid_at"].get(budget)
                      is not None]
            mean, sd, _ = stats.mean_interval(values) if values else (None, None, None)
            cells.append("–" if mean is None else f"{mean:.1f}" + (f" ± {sd:.1f}" if sd else "")
                         + f" ({len(values)})")
        lines.append(f"| `{config}` | " + " | ".join(cells) + " |")
    return lines


def group_by_config(rows):
    """{config name: [rows of its runs]}, in the study's order."""
    groups = {}
    for row in rows:
        groups.setdefault(row["config"], []).append(row)
    return groups


def arms(rows, metric):
    """{configuration: [metric of each finished run]}, in the study's order."""
    values = {}
    for row in rows:
        values.setdefault(row["config"], [])
        if row["status"] == "done" and row[metric] != "":
            values[row["config"]].append(float(row[metric]))
    return values


def declared(study):
    """The study's Analysis, with the default baseline (its first configuration) named."""
    return study.analysis or Analysis()


def machines(rows):
    """The machines the finished runs trained on (runs recorded before machines were, left
    out)."""
    return sorted({row.get("machine", "") for row in rows if row["status"] == "done"} - {""})


def comparison_lines(study, rows):
    analysis = declared(study)
    where = machines(rows)
    if analysis.block_machines:
        return blocked_lines(analysis, rows, where)
    if len(where) > 1 and not analysis.mix_machines:
        return [f"Not analysed: the finished runs trained on {len(where)} machines "
                f"({'; '.join(where)}), whose numbers differ beyond their seeds. Train the "
                "study on one machine, or declare `[analysis] mix_machines = true` to compare "
                "them anyway."]
    if analysis.baseline == RAW_GENERATOR:
        return raw_generator_lines(analysis, rows)
    values = arms(rows, analysis.metric)
    baseline = analysis.baseline or next(iter(values), "")
    reference = None if baseline == ALL_PAIRS else baseline
    what = METRIC_NAMES[analysis.metric]
    against = ("every pair of configurations" if reference is None
               else f"the baseline **{baseline}**")
    lines = [f"Declared analysis: {what} of each configuration against {against}, "
             f"α = {analysis.alpha:g}, equivalence margin ±{analysis.margin:g}. Difference of "
             f"means with its Welch {1 - analysis.alpha:.0%} interval; p-values Welch's, "
             "Holm-adjusted over the comparisons; equivalence by two one-sided tests (Holm "
             f"too); \"detects\" is the difference this n finds with {stats.POWER:.0%} power, "
             "from the pooled within-configuration sd.", ""]
    comparisons = stats.compare(values, reference, analysis.alpha, analysis.margin)
    if not comparisons:
        return lines + ["No comparison yet: each side needs at least 2 finished runs."]
    lines += _table(comparisons)
    short = [arm for arm, v in values.items() if len(v) < 2]
    if short:
        lines += ["", f"Not compared (fewer than 2 finished runs): {', '.join(short)}."]
    return lines


def blocked_lines(analysis, rows, where):
    """Each configuration against the baseline within machines (the machine a block of the
    additive linear model)."""
    baseline = analysis.baseline or next(iter(group_by_config(rows)), "")
    observations = [(row["config"], row.get("machine", ""), float(row[analysis.metric]))
                    for row in rows if row["status"] == "done" and row[analysis.metric] != ""]
    per_comparison = analysis.variance == "per_comparison"
    lines = [f"Declared analysis: {METRIC_NAMES[analysis.metric]} of each configuration against "
             f"the baseline **{baseline}** within machines ({len(where)} here: "
             f"{'; '.join(where) or 'unknown'}), the machine a block of the additive least-squares "
             f"model{PER_COMPARISON if per_comparison else ''}; "
             f"α = {analysis.alpha:g}, equivalence margin ±{analysis.margin:g}. Each "
             f"difference is the model's coefficient with its t {1 - analysis.alpha:.0%} interval; "
             "p-values Holm-adjusted over the comparisons; equivalence by two one-sided t tests "
             "(Holm too); \"detects\" is the difference the coefficient's standard error finds "
             f"with {stats.POWER:.0%} power.", ""]
    comparisons = stats.compare_blocked(observations, baseline, analysis.alpha, analysis.margin,
                                        per_comparison=per_comparison)
    if not comparisons:
        return lines + ["No comparison yet: each side needs at least 2 finished runs."]
    return lines + _table(comparisons)


def _table(comparisons, sides=lambda c: f"`{c.arm}` | `{c.reference}` | "
                                         f"{c.n} vs {c.n_reference}"):
    """The verdicts' table; `sides` gives a comparison's first three cells."""
    lines = ["| configuration | vs | n | difference | interval | p (Holm) | detects | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in comparisons:
        detects = "—" if c.mde is None else f"{c.mde:.1f}"
        lines.append(f"| {sides(c)} | {c.difference:+.1f} | [{c.low:+.1f}, {c.high:+.1f}] | "
                     f"{c.p_holm:.3g} | {detects} | {c.verdict} |")
    return lines


def raw_value(row, analysis):
    """The analysed metric of a run's raw G (its eval/raw/fid curve), or None."""
    curve = (row.get("scalars") or {}).get(RAW_FID) or []
    if row["status"] != "done" or not curve:
        return None
    if analysis.metric == "fid_final":
        return curve[-1][1]
    if analysis.metric == "fid_best":
        return min(value for _, value in curve)
    return fid_at(dict(row, fid_curve=curve), analysis.budgets[-1], analysis.unit)


def raw_generator_lines(analysis, rows):
    """Each configuration's moving average of G against G itself, paired by run."""
    pairs = {}
    for row in rows:
        averaged, raw = row.get(analysis.metric, ""), raw_value(row, analysis)
        pair = pairs.setdefault(row["config"], ([], []))
        if row["status"] == "done" and averaged != "" and raw is not None:
            pair[0].append(float(averaged))
            pair[1].append(float(raw))
    lines = [f"Declared analysis: {METRIC_NAMES[analysis.metric]} of each configuration's "
             "moving average of G against its raw G, both scored in the same runs on the same "
             f"noise, paired by run; α = {analysis.alpha:g}, equivalence margin "
             f"±{analysis.margin:g}. Mean difference with its paired t {1 - analysis.alpha:.0%} "
             "interval; p-values paired t, Holm-adjusted over the configurations; equivalence by "
             "two one-sided paired tests (Holm too); \"detects\" is the difference this n finds "
             f"with {stats.POWER:.0%} power, from the sd of the differences.", ""]
    comparisons = stats.compare_paired(pairs, analysis.alpha, analysis.margin)
    if not comparisons:
        return lines + ["No comparison yet: each configuration needs at least 2 finished runs "
                        "that scored both generators."]
    lines += _table(comparisons, lambda c: f"`{c.arm}` (averaged G) | raw G | {c.n} pairs")
    return lines


def anova_lines(study, rows):
    """The factorial ANOVA of a study with several axes, or no lines."""
    if len(study.axes) < 2:
        return []
    analysis = declared(study)
    factors = [axis.name for axis in study.axes]
    done = [row for row in rows if row["status"] == "done" and row[analysis.metric] != ""
            and all(row.get(f, "") != "" for f in factors)]
    fit = stats.factorial_anova(done, factors, analysis.metric) if done else None
    if fit is None:
        return ["", "Factorial ANOVA: not enough finished runs to fit every cell."]
    anova, effects = fit
    lines = ["", f"Factorial ANOVA of the {METRIC_NAMES[analysis.metric]} "
             "(type II sums of squares):", "", "| term | df | F | p |", "| --- | --- | --- | --- |"]
    lines += [f"| {term} | {df} | {f:.2f} | {p:.3g} |" for term, df, f, p in anova]
    lines += ["", "Effect of each level against its axis's first level (additive model, "
              f"{1 - analysis.alpha:.0%} interval):", ""]
    lines += [f"- {factor} = {level}: {effect:+.1f} [{low:+.1f}, {high:+.1f}]"
              for factor, level, effect, low, high in effects]
    return lines


def lines(study, rows):
    compared = comparison_lines(study, rows)
    if compared[0].startswith("Not analysed"):
        return compared
    return compared + anova_lines(study, rows) + budget_lines(study, rows)
