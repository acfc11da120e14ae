"""Does a run reproduce? `posecore.reproduce(run_name, as_run=None, allow_drift=False)` and
`python -m posecore.reproduce RUN [--as NAME] [--allow-drift]`.

1. Refuse first: the run's records (env.json, code.patch; read through posecore.records, which
   names the file and key of a value that is not what posecore writes) are compared with now: the code commit
   and the uncommitted diff, Python, every installed package version, the data fingerprint of
   every split it read, the checkpoints it evaluated from outside the run, the devices, and
   whether params.yaml alone can stand for the run (a multi-node run, an unfinished training, a
   resume that changed params are refused). Any difference makes the verdict "refused", with
   one reason per difference, before anything runs (allow_drift=True goes on regardless and
   keeps the reasons in the result).
2. Re-run from the run folder alone into a new run (default `<run>-reproduce-<n>`): its
   params.yaml, on the recorded number of devices, with the recorded threads per worker and
   determinism, then the evaluations env.json records (the same checkpoint name, npus and the
   params of eval/params.yaml). The parameters of the run's executed notebooks are read and
   reported (`notebooks`); an evaluation recorded only by an executed eval notebook is re-run
   from its parameters.
3. Compare: the logged training losses step by step, the final weights (checkpoints/last.pt,
   every tensor), the metrics (metrics.json, timings left out).

Verdicts: "identical" (every loss, tensor and metric equal, bit for bit), "within_tolerance"
(losses within TOLERANCE["loss"] relative, each tensor within TOLERANCE["weights"] (|a - b| max
over max |a|), metrics within TOLERANCE["metric"]; the largest differences are reported),
"differs" (with the first diverging step and the metric deltas), "refused". The result dict is
written as reproduce.json into both runs and as the "Reproduction" section of the original
run's report.html. The CLI prints the verdict table and exits 0 for identical / within
tolerance, 1 for differs, 2 for refused.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import types
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from posecore import device
from posecore.checkpoints import read_checkpoint
from posecore.data.fingerprint import data_fingerprint, file_sha256, fingerprint_changes
from posecore.engine import train
from posecore.environment import code_diff, git_state, installed_packages, normalized_name
from posecore.evaluation import evaluate
from posecore.files import finite_number, json_safe, write_json
from posecore.params import RESUME_HARMLESS, Params, load_params
from posecore.records import read_notebook_parameters
from posecore.report import Table, save_table, write_report
from posecore.runs import Run, check_run_name, run_dir, run_lock, run_writer

TOLERANCE = {"loss": 1e-3, "weights": 1e-3, "metric": 5e-3}
VERDICTS = ("identical", "within_tolerance", "differs", "refused")
_TIMING_KEYS = re.compile(r".*(_per_s|_s|seconds|time)$")


def reproduce(run_name: str, as_run: str | None = None, allow_drift: bool = False) -> dict[str, Any]:
    """Re-run `run_name` from its folder and compare (module docstring). Returns {"verdict",
    "reasons", "run" (the new run, None when refused), "original", "losses", "weights",
    "metrics", "notebooks", ...}, also written as reproduce.json."""
    folder = _existing_run(run_name)
    run = Run.at(folder)
    params, env = run.params(), run.env()
    plan = rerun_plan(folder, env)
    missing = [] if env else [f"{Run.ENV} is missing: the run has no records to compare with now"]
    reasons = missing + plan.pop("refusals") + drift(folder, env, params)
    new_name = as_run or _next_name(run_name)
    check_run_name(new_name)
    if _has_run(new_name):
        reasons.append(f"run {new_name!r} already exists: a reproduction writes a new run (pass another as_run)")
    result: dict[str, Any] = {
        "verdict": "refused",
        "reasons": reasons,
        "run": None,
        "original": run_name,
        "allow_drift": allow_drift,
        "notebooks": plan["notebooks"],
        "time": datetime.now().isoformat(timespec="seconds"),
    }
    blocked = plan["blocked"] or _has_run(new_name)
    if reasons and (blocked or not allow_drift):
        return _record(result, folder, None)
    _rerun(plan, params, folder, new_name)
    new_folder = run_dir(new_name, create=False)
    result.update(run=new_name, **compare(folder, new_folder))
    return _record(result, folder, new_folder)


# --- 1. refuse first ------------------------------------------------------------------------


def drift(folder: Path, env: dict[str, Any], params: Params) -> list[str]:
    """Each difference between the run's records and now that could change its numbers, in words
    (empty when nothing differs): code, Python, packages, data, external checkpoints, devices."""
    reasons = []
    git, now_git = env.get("git") or {}, git_state()
    if git.get("commit") != now_git["commit"]:
        reasons.append(f"code: commit {_short(git.get('commit'))} recorded, {_short(now_git['commit'])} now")
    recorded_patch = _read_text(folder / git["patch"]) if git.get("patch") else ""
    now_patch = code_diff() or ""
    if recorded_patch != now_patch:
        files = _patch_files_differing(recorded_patch, now_patch)
        reasons.append(
            f"code: the uncommitted changes differ from the recorded "
            f"{git.get('patch') or 'clean tree'} (in {', '.join(files) or 'the patch'})"
        )
    if env.get("python") and env["python"] != sys.version.split()[0]:
        reasons.append(f"python {env['python']} recorded, {sys.version.split()[0]} now")
    recorded = {normalized_name(name): (name, version) for name, version in (env.get("packages") or {}).items()}
    installed = {normalized_name(name): (name, version) for name, version in installed_packages().items()}
    if not recorded:
        reasons.append(
            f"packages: {Run.ENV} records no installed packages (a run from before posecore "
            "recorded them); pass allow_drift=True to re-run anyway"
        )
    for key in sorted(recorded.keys() | installed.keys() if recorded else ()):
        before, after = recorded.get(key), installed.get(key)
        if before is None:
            reasons.append(f"packages: {after[0]} {after[1]} installed, not recorded")
        elif after is None:
            reasons.append(f"packages: {before[0]} {before[1]} recorded, not installed")
        elif before[1] != after[1]:
            reasons.append(f"packages: {before[0]} {before[1]} recorded, {after[1]} installed")
    recorded_data = env.get("data_fingerprint") or {}
    if not recorded_data:
        reasons.append(f"data: {Run.ENV} records no data fingerprint")
    now_data = {
        split: data_fingerprint(_split_params(folder, params, split), (split,))[split] for split in recorded_data
    }
    reasons += fingerprint_changes(recorded_data, now_data)
    for evaluation in env.get("evaluations") or []:
        path = evaluation.get("path")
        if path and not _inside(Path(path), folder):
            if not Path(path).is_file():
                reasons.append(f"checkpoint: {path} (evaluated) does not exist now")
            elif file_sha256(path) != evaluation.get("sha256"):
                reasons.append(
                    f"checkpoint: {path} changed since it was evaluated (sha256 "
                    f"{_short(evaluation.get('sha256'))} recorded)"
                )
    kind = device.device_type()
    if env.get("device_type") and env["device_type"] != kind:
        reasons.append(f"devices: the run ran on {env['device_type']}, this machine has {kind}")
    return reasons


def rerun_plan(folder: Path, env: dict[str, Any]) -> dict[str, Any]:
    """What re-running the run means: {"train", "npus", "threads", "deterministic",
    "evaluations", "notebooks", "refusals" (why params.yaml alone cannot stand for the run),
    "blocked" (a refusal that allow_drift cannot lift)}."""
    run = Run.at(folder)
    log = run.log()
    train_steps = max((r.get("step", 0) for r in log if r.get("type") == "train"), default=0)
    summaries = [r for r in log if r.get("type") == "summary"]
    trained = run.last_path.is_file() or train_steps > 0
    npus = int(env.get("npus") or 1)
    notebooks = notebook_parameters(folder)
    plan = {
        "train": trained,
        "npus": npus,
        "threads": (env.get("threads") or {}).get("per_worker"),
        "deterministic": env.get("deterministic"),
        "notebooks": notebooks,
        "evaluations": list(env.get("evaluations") or []),
        "refusals": [],
        "blocked": False,
    }
    if not plan["evaluations"] and "eval" in notebooks:
        parameters = notebooks["eval"]
        plan["evaluations"] = [
            {"checkpoint": parameters.get("checkpoint", "best"), "npus": parameters.get("npus", 1), "path": None}
        ]
    refusals = plan["refusals"]
    if int(env.get("nnodes") or 1) > 1:
        refusals.append(f"the run trained on {env['nnodes']} machines; reproduce re-runs on this machine only")
        plan["blocked"] = True
    if npus > 1 and device.device_type() != "cpu" and device.device_count() < npus:
        refusals.append(
            f"devices: the run used {npus} {env.get('device_type')} devices, this machine has {device.device_count()}"
        )
        plan["blocked"] = True
    if trained and (not summaries or summaries[-1].get("steps", 0) < train_steps):
        refusals.append(
            f"the run's training has not finished ({Run.LOG} has steps up to {train_steps} "
            f"and no summary after them): resume it before reproducing it"
        )
        plan["blocked"] = True
    changed = sorted(
        {
            key
            for r in log
            if r.get("type") == "params_changed"
            for key in r.get("changed", {})
            if key not in RESUME_HARMLESS
        }
    )
    if changed:
        refusals.append(
            f"a resume of the run changed {', '.join(changed)} ({Run.LOG} params_changed): "
            f"{Run.PARAMS} alone does not describe its first part"
        )
    if not trained and not plan["evaluations"]:
        refusals.append("the run has neither a training nor a recorded evaluation to re-run")
        plan["blocked"] = True
    return plan


def notebook_parameters(folder: Path) -> dict[str, dict[str, Any]]:
    """{notebook stem: papermill parameters} of the run's executed notebooks (notebooks/*.ipynb),
    each read through posecore.records (a notebook that is not one is an error naming it)."""
    found = {}
    for path in sorted(Run.at(folder).notebooks_dir.glob("*.ipynb")):
        parameters = read_notebook_parameters(path)
        if parameters is not None:
            found[path.stem] = parameters
    return found


# --- 2. re-run ------------------------------------------------------------------------------


def _rerun(plan: dict[str, Any], params: Params, folder: Path, new_name: str) -> None:
    overrides = {}
    if isinstance(plan["deterministic"], bool):
        overrides["train.deterministic"] = plan["deterministic"]
    if plan["train"]:
        threads = {"dist.threads": int(plan["threads"])} if plan["threads"] else {}
        train(load_params(params, {**overrides, **threads}), npus=plan["npus"], run_name=new_name)
    eval_params_path = Run.at(folder).eval_params_path
    for evaluation in plan["evaluations"]:
        threads = (evaluation.get("threads") or {}).get("per_worker") or plan["threads"]
        eval_params = load_params(
            eval_params_path if eval_params_path.is_file() else params,
            {**overrides, **({"dist.threads": int(threads)} if threads else {})},
        )
        checkpoint = evaluation.get("checkpoint")
        path = evaluation.get("path")
        if checkpoint not in (None, "best", "last") and path and _inside(Path(path), folder):
            checkpoint = str(run_dir(new_name) / Path(path).resolve().relative_to(folder.resolve()))
        evaluate(eval_params, checkpoint, npus=int(evaluation.get("npus") or 1), run_name=new_name)


# --- 3. compare -----------------------------------------------------------------------------


def compare(original: Path, reproduction: Path) -> dict[str, Any]:
    """{"verdict", "losses", "weights", "metrics", "first_diverging_step"} of two run folders."""
    losses = compare_losses(original, reproduction)
    weights = compare_weights(Run.at(original).last_path, Run.at(reproduction).last_path)
    metrics = compare_metrics(original, reproduction)
    parts = (losses, weights, metrics)
    if all(part["equal"] for part in parts):
        verdict = "identical"
    elif all(part["within_tolerance"] for part in parts):
        verdict = "within_tolerance"
    else:
        verdict = "differs"
    return {
        "verdict": verdict,
        "first_diverging_step": losses.get("first_diverging_step"),
        "losses": losses,
        "weights": weights,
        "metrics": metrics,
    }


def compare_losses(original: Path, reproduction: Path) -> dict[str, Any]:
    """The logged training losses, record by record (step: loss of its log window)."""

    def losses(folder: Path) -> dict[int, Any]:
        return {r["step"]: r.get("loss") for r in Run.at(folder).log() if r.get("type") == "train"}

    before, after = losses(original), losses(reproduction)
    first, largest = None, 0.0
    for step in sorted(before.keys() | after.keys()):
        a, b = before.get(step), after.get(step)
        if a == b or (a is None and b is None):
            continue
        first = step if first is None else first
        largest = max(largest, _relative(a, b))
    return {
        "steps": len(before),
        "steps_reproduced": len(after),
        "equal": first is None,
        "first_diverging_step": first,
        "largest_relative_difference": largest,
        "within_tolerance": largest <= TOLERANCE["loss"],
    }


def compare_weights(original: Path, reproduction: Path) -> dict[str, Any]:
    """Every tensor of two checkpoints' models: bitwise equal, or the largest difference."""
    if not original.is_file() and not reproduction.is_file():
        return {"tensors": 0, "equal": True, "within_tolerance": True, "note": "no checkpoint (no training)"}
    if not original.is_file() or not reproduction.is_file():
        missing = original if not original.is_file() else reproduction
        return {"tensors": 0, "equal": False, "within_tolerance": False, "note": f"{missing} does not exist"}
    before, after = read_checkpoint(original)["model"], read_checkpoint(reproduction)["model"]
    if before.keys() != after.keys():
        return {
            "tensors": len(before),
            "equal": False,
            "within_tolerance": False,
            "note": f"other tensor names: {sorted(before.keys() ^ after.keys())[:5]}",
        }
    differing, largest, worst = [], 0.0, None
    for name, tensor in before.items():
        other = after[name]
        if tensor.shape != other.shape or tensor.dtype != other.dtype:
            differing.append(name)
            largest, worst = math.inf, name
            continue
        if torch.equal(tensor, other):
            continue
        differing.append(name)
        a, b = tensor.double(), other.double()
        scale = float(a.abs().max()) or 1.0
        difference = float((a - b).abs().max()) / scale
        if difference > largest:
            largest, worst = difference, name
    return {
        "tensors": len(before),
        "tensors_differing": len(differing),
        "equal": not differing,
        "largest_relative_difference": largest,
        "largest_in": worst,
        "within_tolerance": largest <= TOLERANCE["weights"],
    }


def compare_metrics(original: Path, reproduction: Path) -> dict[str, Any]:
    """metrics.json of both runs, key by key (timings left out): {"deltas": {key: [a, b, b - a]}}."""

    def metrics(folder: Path) -> dict[str, Any]:
        values = Run.at(folder).metrics()
        return {k: v for k, v in values.items() if not _TIMING_KEYS.fullmatch(k) and not isinstance(v, (dict, list))}

    before, after = metrics(original), metrics(reproduction)
    deltas, equal, within = {}, True, True
    for key in sorted(before.keys() | after.keys()):
        a, b = before.get(key), after.get(key)
        if a == b:
            continue
        equal = False
        if finite_number(a) and finite_number(b):
            deltas[key] = [a, b, b - a]
            within = within and abs(b - a) <= TOLERANCE["metric"]
        else:
            deltas[key] = [a, b, None]
            within = False
    return {"keys": len(before), "equal": equal, "within_tolerance": within, "deltas": deltas}


# --- records --------------------------------------------------------------------------------


def _record(result: dict[str, Any], folder: Path, new_folder: Path | None) -> dict[str, Any]:
    """reproduce.json into both runs, and the Reproduction section of the original's report."""
    result = json_safe(result)
    if new_folder is not None:
        write_json(Run.at(new_folder).reproduction_path, result)
    with run_lock(folder, "reproduction"):
        write_json(Run.at(folder).reproduction_path, result)
    save_table(folder.name, "reproduce_verdict", verdict_table(result))  # both take the lock themselves
    write_report(folder.name)
    return result


def verdict_table(result: dict[str, Any]) -> Table:
    """The verdict, its reasons and the comparisons as a Table (report, notebook and command line)."""
    rows = [["verdict", result["verdict"], f"{result['original']} -> {result.get('run') or '(not re-run)'}"]]
    rows += [["reason", reason, ""] for reason in result.get("reasons", [])]
    losses, weights, metrics = (result.get(key) or {} for key in ("losses", "weights", "metrics"))
    if losses:
        rows.append(
            [
                "losses",
                f"{losses['steps']} logged steps, "
                + ("all equal" if losses["equal"] else f"first differing at step {losses['first_diverging_step']}"),
                f"largest relative difference {losses['largest_relative_difference']:.3g}",
            ]
        )
    if weights:
        rows.append(
            [
                f"weights ({Run.CHECKPOINT_FILES['last']})",
                f"{weights['tensors']} tensors, "
                + ("bitwise equal" if weights["equal"] else f"{weights.get('tensors_differing', '?')} differ"),
                weights.get("note")
                or f"largest relative difference {weights.get('largest_relative_difference', 0):.3g}"
                + (f" in {weights['largest_in']}" if weights.get("largest_in") else ""),
            ]
        )
    if metrics:
        rows.append(
            ["metrics", f"{metrics['keys']} values, " + ("all equal" if metrics["equal"] else "some differ"), ""]
        )
        rows += [
            [f"metric {key}", f"{a} -> {b}", "" if delta is None else f"{delta:+.4g}"]
            for key, (a, b, delta) in metrics["deltas"].items()
        ]
    return Table(
        ["check", "result", "detail"],
        rows,
        title=f"Reproduction of {result['original']}: {result['verdict']}",
        note=f"tolerances: {TOLERANCE}",
        highlight=(0,),
    )


# --- helpers --------------------------------------------------------------------------------


def _existing_run(run_name: str) -> Path:
    folder = run_dir(run_name, create=False)
    if not Run.at(folder).exists():
        raise FileNotFoundError(
            f"{Run.at(folder).params_path} does not exist: reproduce needs a run that "
            f"posecore.train or posecore.evaluate wrote (run {run_name!r})"
        )
    writer = run_writer(folder)
    if writer:
        raise RuntimeError(
            f"run {run_name!r} is being written by {writer.get('purpose', 'a process')} "
            f"(pid {writer.get('pid')}): reproduce it when that has finished"
        )
    return folder


def _has_run(name: str) -> bool:
    folder = run_dir(name, create=False)
    return folder.is_dir() and any(folder.iterdir())


def _next_name(run_name: str) -> str:
    n = 1
    while _has_run(f"{run_name}-reproduce-{n}"):
        n += 1
    return f"{run_name}-reproduce-{n}"


def _split_params(folder: Path, params: Params, split: str) -> Any:
    """The params a split was read with: the evaluation's (eval/params.yaml) for test, else the run's."""
    eval_params = Run.at(folder).eval_params_path
    return load_params(eval_params) if split == "test" and eval_params.is_file() else params


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _relative(a: Any, b: Any) -> float:
    if not (finite_number(a) and finite_number(b)):
        return math.inf
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def _short(commit: str | None) -> str:
    return commit[:10] if commit else "none (not a git checkout)"


def _read_text(path: Path) -> str:
    return path.read_text() if path.is_file() else f"(missing {path.name})"


def _patch_files_differing(a: str, b: str) -> list[str]:
    def by_file(patch: str) -> dict[str, str]:
        sections = re.split(r"^(?=diff --git |# untracked )", patch, flags=re.M)
        found = {}
        for section in sections:
            match = re.match(r"diff --git a/(\S+) b/(\S+)|# untracked (\S+):", section)
            if match:
                found[match.group(2) or match.group(3)] = section
        return found

    before, after = by_file(a), by_file(b)
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


# --- command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m posecore.reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="the run to reproduce (a folder name under outputs/)")
    parser.add_argument("--as", dest="as_run", help="the new run's name (default <run>-reproduce-<n>)")
    parser.add_argument("--allow-drift", action="store_true", help="re-run despite recorded differences")
    args = parser.parse_args(argv)
    result = reproduce(args.run, as_run=args.as_run, allow_drift=args.allow_drift)
    table = verdict_table(result)
    width = max(len(str(row[0])) for row in table.rows)
    print(table.title)
    for check, outcome, detail in table.rows:
        print(f"  {check:<{width}}  {outcome}{f'  ({detail})' if detail else ''}")
    return {"identical": 0, "within_tolerance": 0, "differs": 1}.get(result["verdict"], 2)


class _CallableModule(types.ModuleType):
    """`posecore.reproduce(run)` works whether the name resolves to this function or, once the
    submodule is imported (`python -m posecore.reproduce`, `import posecore.reproduce`), to it."""

    def __call__(self, run_name: str, as_run: str | None = None, allow_drift: bool = False) -> dict[str, Any]:
        return reproduce(run_name, as_run, allow_drift)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(main())
