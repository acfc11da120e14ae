"""Why a keypoint AP is what it is: Ronchi & Perona's error diagnosis with coco-analyze's rules.

- coco: `analyze_coco(gt_file, results_file, info)`, the diagnosis of any COCO-style results file
  (the rules are in its docstring), and `pr_curves(analysis)`
- background: the false positives and false negatives, and the AP without them
- common: the constants, the analysed problem and the COCOeval runs

posecore.diagnosis runs it on a run's evaluation (`posecore.analyze`); posecore.metrics re-exports
`analyze_coco`.
"""

from __future__ import annotations

from posecore.error_analysis.coco import analyze_coco, pr_curves
from posecore.error_analysis.common import CORRECTION_ORDER, ERROR_CODES, ERROR_TYPES, STAGES

__all__ = ["CORRECTION_ORDER", "ERROR_CODES", "ERROR_TYPES", "STAGES", "analyze_coco", "pr_curves"]
