"""Keypoint metadata as data: joint names, left/right flip pairs, skeleton, OKS sigmas.

One `KeypointInfo` per dataset. Everything downstream (flip augmentation, half-body,
OKS, drawing, ONNX metadata) reads these tables instead of hard-coding indices.

Built in: COCO, MPII and the whole-body sets Halpe-26, Halpe-136 and COCO-WholeBody (their
tables live in posecore.keypoint_sets). Besides them, `data.dataset: custom` takes the keypoint set of a
COCO-format annotation file: the person category's `keypoints` (names, in order) and
`skeleton` (1-based pairs). Flip pairs and the upper body are inferred from the names where
they allow it (`left_x`/`right_x`, `l_x`/`r_x`, `x_left`/`x_right`, `LShoulder`/`RShoulder`);
params may give or override `data.flip_pairs`, `data.upper_body` (names or 0-based indices),
`data.joint_weights` and `eval.sigmas` (required for a custom set, or `uniform`).
`keypoint_params` writes the resolved set back into params (by name), so a run's params.yaml
alone rebuilds it.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from posecore.errors import KeypointSetError
from posecore.joint_names import infer_flip_pairs, infer_upper_body, is_placed
from posecore.keypoint_sets import whole_body_sets

FINE_PARTS = ("face", "lefthand", "righthand")


@dataclass(frozen=True)
class KeypointInfo:
    dataset: str
    joint_names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    upper_body: tuple[int, ...]
    sigmas: tuple[float, ...]  # OKS per-joint falloff (COCO's); MPII borrows the closest COCO joints
    joint_weights: tuple[float, ...]
    # named joint ranges [start, stop) of the whole-body sets (body, foot, face, lefthand,
    # righthand): per-part evaluation, thin drawing, the browser's part filter; () = one body
    parts: tuple[tuple[str, tuple[int, int]], ...] = ()

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def index(self, joint: int | str, key: str) -> int:
        """0-based index of a joint given by name or index; `key` names the params entry in errors."""
        if isinstance(joint, bool) or not isinstance(joint, (int, str)):
            raise KeypointSetError(f"{key}: {joint!r} must be a joint name or a 0-based index")
        if isinstance(joint, int):
            if not 0 <= joint < self.num_joints:
                raise KeypointSetError(
                    f"{key}: index {joint} is out of range for {self.num_joints} "
                    f"joints (0..{self.num_joints - 1}: {list(self.joint_names)})"
                )
            return joint
        if joint not in self.joint_names:
            match = difflib.get_close_matches(joint, self.joint_names, n=1, cutoff=0.6)
            hint = f" (did you mean {match[0]!r}?)" if match else ""
            raise KeypointSetError(
                f"{key}: {joint!r} is not a joint of this keypoint set{hint}; joints: {list(self.joint_names)}"
            )
        return self.joint_names.index(joint)

    def record(self) -> dict[str, Any]:
        """The set as an ONNX export and an inference summary write it (JSON-ready); read back by
        `from_record`."""
        return {
            "dataset": self.dataset,
            "joint_names": list(self.joint_names),
            "flip_pairs": [list(pair) for pair in self.flip_pairs],
            "skeleton": [list(pair) for pair in self.skeleton],
            "oks_sigmas": list(self.sigmas),
        }

    def part_joints(self, part: str) -> list[int]:
        """0-based joint indices of one of `parts` by name ("body" of a set without parts: all)."""
        ranges = dict(self.parts)
        if part == "body" and not ranges:
            return list(range(self.num_joints))
        if part not in ranges:
            raise KeyError(f"{self.dataset} has no part {part!r}; its parts: {list(ranges) or ['body']}")
        return list(range(*ranges[part]))

    def fine_joints(self) -> tuple[int, ...]:
        """Joints of the FINE_PARTS (face, hands): many small, close points, which drawing
        renders thin and small so the body stays readable."""
        return tuple(j for name, (start, stop) in self.parts if name in FINE_PARTS for j in range(start, stop))

    def flip_index(self) -> list[int]:
        """Permutation that maps joint j to its mirror (identity for centre joints)."""
        index = list(range(self.num_joints))
        for left, right in self.flip_pairs:
            index[left], index[right] = right, left
        return index


COCO = KeypointInfo(
    dataset="coco",
    joint_names=(
        "nose",
        "left_eye",
        "right_eye",
        "left_ear",
        "right_ear",
        "left_shoulder",
        "right_shoulder",
        "left_elbow",
        "right_elbow",
        "left_wrist",
        "right_wrist",
        "left_hip",
        "right_hip",
        "left_knee",
        "right_knee",
        "left_ankle",
        "right_ankle",
    ),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    skeleton=(
        (15, 13),
        (13, 11),
        (16, 14),
        (14, 12),
        (11, 12),
        (5, 11),
        (6, 12),
        (5, 6),
        (5, 7),
        (6, 8),
        (7, 9),
        (8, 10),
        (1, 2),
        (0, 1),
        (0, 2),
        (1, 3),
        (2, 4),
        (3, 5),
        (4, 6),
    ),
    upper_body=tuple(range(11)),
    sigmas=(
        0.026,
        0.025,
        0.025,
        0.035,
        0.035,
        0.079,
        0.079,
        0.072,
        0.072,
        0.062,
        0.062,
        0.107,
        0.107,
        0.087,
        0.087,
        0.089,
        0.089,
    ),
    joint_weights=(1.0,) * 5 + (1.0,) * 2 + (1.2,) * 2 + (1.5,) * 2 + (1.0,) * 2 + (1.2,) * 2 + (1.5,) * 2,
)

# MPII order as in the official annotations: r_ankle=0 ... l_wrist=15.
MPII = KeypointInfo(
    dataset="mpii",
    joint_names=(
        "right_ankle",
        "right_knee",
        "right_hip",
        "left_hip",
        "left_knee",
        "left_ankle",
        "pelvis",
        "thorax",
        "upper_neck",
        "head_top",
        "right_wrist",
        "right_elbow",
        "right_shoulder",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    skeleton=(
        (0, 1),
        (1, 2),
        (2, 6),
        (6, 3),
        (3, 4),
        (4, 5),
        (6, 7),
        (7, 8),
        (8, 9),
        (7, 12),
        (12, 11),
        (11, 10),
        (7, 13),
        (13, 14),
        (14, 15),
    ),
    upper_body=(7, 8, 9, 10, 11, 12, 13, 14, 15),
    sigmas=(
        0.089,
        0.087,
        0.107,
        0.107,
        0.087,
        0.089,
        0.107,
        0.079,
        0.079,
        0.026,
        0.062,
        0.072,
        0.079,
        0.079,
        0.072,
        0.062,
    ),
    joint_weights=(1.5, 1.2, 1.0, 1.0, 1.2, 1.5, 1.0, 1.0, 1.0, 1.0, 1.5, 1.2, 1.0, 1.0, 1.2, 1.5),
)

# Halpe-26, Halpe-136 and COCO-WholeBody (posecore.keypoint_sets), each starting with COCO's body.
WHOLE_BODY = whole_body_sets(COCO)
HALPE26, HALPE136, COCO_WHOLEBODY = (WHOLE_BODY[name] for name in ("halpe26", "halpe136", "coco_wholebody"))
DATASETS: dict[str, KeypointInfo] = {"coco": COCO, "mpii": MPII, **WHOLE_BODY}
# A uniform OKS sigma, for keypoint sets nobody has measured annotator spread on: COCO's mean.
UNIFORM_SIGMA = round(sum(COCO.sigmas) / COCO.num_joints, 3)


def coco_keypoint_category(coco: dict, source: str) -> dict:
    """The one category of a COCO-format annotation dict that defines keypoints."""
    categories = coco.get("categories") if isinstance(coco, dict) else None
    if not isinstance(categories, list) or not categories:
        raise KeypointSetError(f"{source}: no 'categories' list. {_CATEGORY_FIX}")
    defined = [c for c in categories if isinstance(c, dict) and c.get("keypoints")]
    if not defined:
        listed = ", ".join(f"id {c.get('id')} ({c.get('name')!r})" for c in categories if isinstance(c, dict))
        raise KeypointSetError(f"{source}: category {listed} has no 'keypoints' list. {_CATEGORY_FIX}")
    if len(defined) > 1:
        listed = ", ".join(f"id {c.get('id')} ({c.get('name')!r})" for c in defined)
        raise KeypointSetError(
            f"{source}: several categories define keypoints ({listed}); posecore "
            "trains one keypoint category: keep one and point every annotation's "
            "category_id at it"
        )
    ident = defined[0].get("id")
    if isinstance(ident, bool) or not isinstance(ident, int):
        raise KeypointSetError(
            f"{source}: the keypoint category ({defined[0].get('name')!r}) has id "
            f"{ident!r}, expected an integer (what each annotation's category_id names)"
        )
    return defined[0]


_CATEGORY_FIX = (
    "A keypoint dataset's person category needs 'keypoints' (the joint names, in the order of each "
    "annotation's keypoints array) and 'skeleton' (pairs of 1-based joint numbers, as COCO writes "
    'them), e.g. {"id": 1, "name": "person", "keypoints": ["nose", "left_eye", ...], '
    '"skeleton": [[16, 14], [14, 12], ...]}: add them to the category.'
)


def from_coco_category(category: dict, source: str, infer_flips: bool = True) -> KeypointInfo:
    """A custom KeypointInfo from a COCO category: joint names, skeleton (1-based in the file),
    flip pairs (unless infer_flips is false) and upper body inferred from the names, unit joint
    weights, no sigmas yet."""
    where = f"{source}: category id {category.get('id')} ({category.get('name')!r})"
    names = category.get("keypoints")
    _check_names(names, f"{where}: 'keypoints'")
    skeleton = category.get("skeleton") or []
    if not isinstance(skeleton, list):
        raise KeypointSetError(
            f"{where}: 'skeleton' is {skeleton!r}, expected a list of [a, b] pairs of "
            f"1-based joint numbers. {_CATEGORY_FIX}"
        )
    count = len(names)
    for n, pair in enumerate(skeleton):
        valid = (
            isinstance(pair, (list, tuple))
            and len(pair) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
        )
        if not valid or not all(1 <= v <= count for v in pair):
            zero_based = valid and all(0 <= v < count for v in pair)
            hint = " (it looks 0-based: add 1 to every skeleton index)" if zero_based else ""
            raise KeypointSetError(
                f"{where}: skeleton entry {n} is {pair!r}; each entry is a pair of joint numbers from 1 "
                f"to {count} (1-based, as COCO writes them){hint}. Fix or remove that entry"
            )
    return _custom_info(names, tuple((a - 1, b - 1) for a, b in skeleton), infer_flips)


def _check_names(names: Any, where: str) -> None:
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise KeypointSetError(f"{where} must be a list of joint names, got {names!r}. {_CATEGORY_FIX}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise KeypointSetError(f"{where}: joint names {repeated} appear more than once; every joint needs its own name")


def _custom_info(names: Sequence[str], skeleton: tuple[tuple[int, int], ...], infer_flips: bool) -> KeypointInfo:
    """A custom set before overrides: flip pairs and upper body inferred, unit weights, no sigmas."""
    return KeypointInfo(
        dataset="custom",
        joint_names=tuple(names),
        skeleton=skeleton,
        flip_pairs=infer_flip_pairs(names) if infer_flips else (),
        upper_body=infer_upper_body(names) or (),
        sigmas=(),
        joint_weights=(1.0,) * len(names),
    )


def keypoint_info(params: Any, category: dict | None = None, source: str = "") -> KeypointInfo:
    """The keypoint set of params, or of a built-in dataset name: 'coco', 'mpii', 'halpe26',
    'halpe136', 'coco_wholebody'.

    data.dataset custom: the set the params record (data.joint_names, what a run's params.yaml
    holds), else the one of `category`, the annotation file's keypoint category (`source` names
    the file); both given must agree. Then data.flip_pairs, data.skeleton, data.upper_body,
    data.joint_weights and eval.sigmas override what is recorded or inferred.
    """
    if isinstance(params, str):
        if params not in DATASETS:
            raise ValueError(
                f"unknown dataset {params!r}; built-in: {sorted(DATASETS)} (a custom "
                "keypoint set comes from params: keypoint_info(params, category))"
            )
        return DATASETS[params]
    data = params.data
    if data.dataset in DATASETS:
        if data.joint_names:
            raise KeypointSetError(
                f"data.joint_names is for data.dataset custom; {data.dataset} has "
                "its own joints: remove data.joint_names"
            )
        base = DATASETS[data.dataset]
    elif data.joint_names:
        _check_names(list(data.joint_names), "data.joint_names")
        base = _custom_info(data.joint_names, (), infer_flips=not data.flip_pairs)
        if category is not None and list(category.get("keypoints") or []) != list(data.joint_names):
            raise KeypointSetError(
                f"{source}: the keypoint category's joints {category.get('keypoints')} differ from "
                f"data.joint_names {list(data.joint_names)} (the keypoint set these params were made "
                "with); use the params that match the data, or clear data.joint_names"
            )
    elif category is not None:
        base = from_coco_category(category, source, infer_flips=not data.flip_pairs)
    else:
        raise KeypointSetError(
            "data.dataset custom: the keypoint set comes from the annotation file's keypoint category "
            "or from a run's saved params (data.joint_names); use the run's saved params, or set "
            "data.root to the dataset"
        )
    return _apply_overrides(base, params)


def _apply_overrides(base: KeypointInfo, params: Any) -> KeypointInfo:
    data, sigmas = params.data, params.eval.sigmas
    changes: dict[str, Any] = {}
    if data.flip_pairs:
        changes["flip_pairs"] = _joint_pairs(base, data.flip_pairs, "data.flip_pairs")
        _check_pairs(changes["flip_pairs"], base.joint_names, "data.flip_pairs")
    if data.skeleton:
        changes["skeleton"] = _joint_pairs(base, data.skeleton, "data.skeleton")
    if data.upper_body:
        changes["upper_body"] = tuple(
            sorted({base.index(joint, f"data.upper_body[{n}]") for n, joint in enumerate(data.upper_body)})
        )
    if data.joint_weights:
        changes["joint_weights"] = _per_joint(base, data.joint_weights, "data.joint_weights")
    if sigmas == "uniform":
        changes["sigmas"] = (UNIFORM_SIGMA,) * base.num_joints
    elif sigmas:
        changes["sigmas"] = _per_joint(base, sigmas, "eval.sigmas")
    elif not base.sigmas:
        raise _missing_sigmas(base)
    info = dataclasses.replace(base, **changes) if changes else base
    if data.half_body_prob > 0 and not info.upper_body:
        unplaced = [n for n in info.joint_names if not is_placed(n)]
        raise KeypointSetError(
            f"data.half_body_prob is {data.half_body_prob} but the upper body cannot be told from the "
            f"joint names (no body-part word in {unplaced}): list the upper-body joints in "
            "data.upper_body, or set data.half_body_prob: 0"
        )
    return info


def from_record(record: dict, source: str) -> KeypointInfo:
    """The keypoint set of a `KeypointInfo.record` (an export's metadata, an inference summary):
    a built-in set, checked by its joint names, or the custom set it describes."""
    dataset, names = record.get("dataset"), record.get("joint_names")
    if not isinstance(dataset, str) or not isinstance(names, list):
        raise KeypointSetError(
            f"{source}: a keypoint set needs 'dataset' (its name) and 'joint_names' (a "
            f"list), got {_short(dataset)} and {_short(names)}; posecore.export_onnx "
            "writes the whole set"
        )
    if dataset in DATASETS:
        info = DATASETS[dataset]
        if list(info.joint_names) != names:
            raise KeypointSetError(
                f"{source}: keypoint set {dataset!r} with joints {_short(names)} is not one posecore knows"
            )
        return info
    missing = [key for key in ("joint_names", "flip_pairs", "skeleton", "oks_sigmas") if key not in record]
    if dataset != "custom" or missing:
        raise KeypointSetError(
            f"{source}: keypoint set {dataset!r} with joints {_short(names)} is not one "
            f"posecore knows{f' (a custom set also needs {missing})' if missing else ''}; "
            "posecore.export_onnx writes the whole set"
        )
    _check_names(names, f"{source}: joint_names")
    sigmas = record["oks_sigmas"]
    if not (
        isinstance(sigmas, list)
        and len(sigmas) == len(names)
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1e3 for v in sigmas)
    ):
        raise KeypointSetError(
            f"{source}: oks_sigmas is {_short(sigmas)}, expected {len(names)} positive numbers (one per joint)"
        )
    info = _custom_info(names, _record_pairs(record, "skeleton", len(names), source), infer_flips=False)
    return dataclasses.replace(
        info, flip_pairs=_record_pairs(record, "flip_pairs", len(names), source), sigmas=tuple(float(s) for s in sigmas)
    )


def _record_pairs(record: dict, key: str, count: int, source: str) -> tuple[tuple[int, int], ...]:
    """record[key] as 0-based joint pairs, each index below `count`, or a KeypointSetError."""
    pairs = record[key]
    if not isinstance(pairs, list) or not all(
        isinstance(pair, list)
        and len(pair) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < count for v in pair)
        for pair in pairs
    ):
        raise KeypointSetError(
            f"{source}: {key} is {_short(pairs)}, expected [a, b] pairs of 0-based joint indices below {count}"
        )
    return tuple((a, b) for a, b in pairs)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def keypoint_params(params: Any, info: KeypointInfo) -> Any:
    """params with a custom keypoint set written into it, by joint name (data.joint_names,
    data.skeleton, data.flip_pairs, data.upper_body, data.joint_weights, eval.sigmas) and
    model.num_joints set to its joint count, so the saved params.yaml alone rebuilds `info`.
    Built-in datasets' params come back unchanged."""
    if info.dataset in DATASETS:
        return params
    names = info.joint_names
    data = dataclasses.replace(
        params.data,
        joint_names=list(names),
        skeleton=[[names[a], names[b]] for a, b in info.skeleton],
        flip_pairs=[[names[a], names[b]] for a, b in info.flip_pairs],
        upper_body=[names[j] for j in info.upper_body],
        joint_weights=list(info.joint_weights),
    )
    sigmas = "uniform" if params.eval.sigmas == "uniform" else list(info.sigmas)
    return dataclasses.replace(
        params,
        data=data,
        eval=dataclasses.replace(params.eval, sigmas=sigmas),
        model=dataclasses.replace(params.model, num_joints=info.num_joints),
    )


def _joint_pairs(info: KeypointInfo, pairs: Any, key: str) -> tuple[tuple[int, int], ...]:
    out = []
    for n, pair in enumerate(pairs):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise KeypointSetError(f"{key}[{n}]: {pair!r} must be a pair [a, b] of joint names or 0-based indices")
        a, b = (info.index(joint, f"{key}[{n}]") for joint in pair)
        if a == b:
            raise KeypointSetError(f"{key}[{n}]: {pair!r} pairs a joint with itself")
        out.append((a, b))
    return tuple(out)


def _check_pairs(pairs: Sequence[tuple[int, int]], joint_names: Sequence[str], key: str) -> None:
    seen: set[int] = set()
    for a, b in pairs:
        twice = {a, b} & seen
        if twice:
            raise KeypointSetError(
                f"{key}: joint {joint_names[twice.pop()]!r} is in more than one "
                "flip pair; each joint mirrors at most one other"
            )
        seen |= {a, b}


def _per_joint(info: KeypointInfo, values: Any, key: str) -> tuple[float, ...]:
    numbers = isinstance(values, (list, tuple)) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values
    )
    if not numbers or len(values) != info.num_joints:
        raise KeypointSetError(
            f"{key} needs {info.num_joints} positive numbers, one per joint in the "
            f"order {list(info.joint_names)}; got {values!r}"
        )
    return tuple(float(v) for v in values)


def _missing_sigmas(info: KeypointInfo) -> KeypointSetError:
    coco = dict(zip(COCO.joint_names, COCO.sigmas))
    shared = [name for name in info.joint_names if name in coco]
    start = ""
    if shared:
        start = (
            f" COCO's values for your joints that carry COCO names ({shared}) and "
            f"{UNIFORM_SIGMA} for the others: eval.sigmas: "
            f"{[coco.get(name, UNIFORM_SIGMA) for name in info.joint_names]}."
        )
    return KeypointSetError(
        f"eval.sigmas is not set for the custom keypoint set ({info.num_joints} joints: "
        f"{list(info.joint_names)}). COCO AP matches people by OKS, which scores each joint's error "
        "against a per-joint sigma: how much careful annotators disagree on that joint, relative to "
        "the person's size (small for sharp points such as eyes, larger for hips). Give one sigma per "
        f"joint in the joints' order; COCO's for its 17 joints are eval.sigmas: {list(COCO.sigmas)} "
        f"({', '.join(f'{n} {s}' for n, s in coco.items())}).{start} Or set eval.sigmas: uniform "
        f"for {UNIFORM_SIGMA} (COCO's mean) on every joint; the metrics then record 'uniform'."
    )


def check_num_joints(params) -> KeypointInfo:
    """params' keypoint set, after checking that model.num_joints matches it (the model's head
    has one heatmap per joint)."""
    info = keypoint_info(params)
    if params.model.num_joints != info.num_joints:
        raise ValueError(
            f"model.num_joints is {params.model.num_joints} but {info.dataset} has "
            f"{info.num_joints} joints; fix model.num_joints in the params"
        )
    return info
