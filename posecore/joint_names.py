"""What a joint's name says about it: its side (left / right) and whether it sits above or below
the waist. A custom keypoint set gets its flip pairs and its upper body (the half-body
augmentation's split) from its names this way, when the names allow it.

Names are compared word by word in lower case; words are split at separators, digits and
camelCase, so 'left_shoulder', 'LShoulder' and 'l-shoulder' all read as a left shoulder.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence

from posecore.errors import KeypointSetError

# Side words become a marker, so two names that differ only in their side compare equal once mirrored.
_SIDES = {"left": "<L>", "l": "<L>", "right": "<R>", "r": "<R>"}
_MIRROR = {"<L>": "<R>", "<R>": "<L>"}
# Body-part words above and below the waist (written as text: one word a line would be 50 lines)
_UPPER_TEXT = (
    "head nose eye eyes ear ears mouth lip lips chin jaw face forehead brow eyebrow cheek neck throat "
    "thorax chest shoulder shoulders clavicle elbow elbows wrist wrists hand hands palm finger thumb index pinky"
)
_LOWER_TEXT = "pelvis hip hips waist knee knees ankle ankles foot feet heel heels toe toes leg legs thigh shin calf"
UPPER_WORDS = frozenset(_UPPER_TEXT.split())
LOWER_WORDS = frozenset(_LOWER_TEXT.split())
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def name_words(name: str) -> tuple[str, ...]:
    """Lower-case words of a joint name, split at separators, digits and camelCase:
    'left_shoulder' -> ('left', 'shoulder'), 'LBigToe' -> ('l', 'big', 'toe')."""
    return tuple(word.lower() for word in _WORD.findall(name))


def is_placed(name: str) -> bool:
    """Whether the name has a body-part word that puts the joint above or below the waist."""
    return bool(set(name_words(name)) & (UPPER_WORDS | LOWER_WORDS))


def infer_flip_pairs(joint_names: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """Left/right pairs (i < j) of joints whose names differ only in their side words:
    left_x/right_x, l_x/r_x, x_left/x_right, LX/RX, in any case. Each joint is in one pair at most
    (a name that mirrors several joints is a KeypointSetError). A sided name without a mirror is
    kept as a centre joint, with a warning (flipping then mislabels it)."""
    keys = [tuple(_SIDES.get(word, word) for word in name_words(name)) for name in joint_names]
    pairs, unpaired = [], []
    for i, key in enumerate(keys):
        mirror = tuple(_MIRROR.get(word, word) for word in key)
        if mirror == key:
            continue
        partners = [j for j, other in enumerate(keys) if other == mirror]
        if len(partners) > 1:
            raise KeypointSetError(
                f"joint {joint_names[i]!r} mirrors several joints {[joint_names[j] for j in partners]}: "
                "give the left/right pairs in data.flip_pairs"
            )
        if not partners:
            unpaired.append(joint_names[i])
        elif i < partners[0]:
            pairs.append((i, partners[0]))
    if unpaired:
        warnings.warn(
            f"joints {unpaired} look sided but have no mirrored joint; they flip as centre "
            "joints. Give data.flip_pairs, or set data.flip: false",
            stacklevel=2,
        )
    return tuple(pairs)


def infer_upper_body(joint_names: Sequence[str]) -> tuple[int, ...] | None:
    """Indices of the upper-body joints when every name has a known body-part word (head, eye,
    neck, shoulder, wrist, ... above the waist; hip, pelvis, knee, ankle, toe, ... below); None
    when some name has none, since half-body crops need every joint placed."""
    upper = []
    for index, name in enumerate(joint_names):
        words = set(name_words(name))
        if words & UPPER_WORDS:
            upper.append(index)
        elif not words & LOWER_WORDS:
            return None
    return tuple(upper)
