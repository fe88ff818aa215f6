"""Campaign measurement: A/B readouts, guards, CUPED, sample-size planning and peeking.

Typical use::

    from personalize.data.adapters import load_hillstrom
    from personalize.experiments import readout, sample_size_proportion

    data = load_hillstrom("../shared/data/hillstrom/hillstrom.csv.gz")
    rd = readout(data, cuped="history")
    print(rd)                      # the table, guards first, then verdicts
    rd.to_dict()                   # JSON-safe
    sample_size_proportion(0.106, 0.01, power=0.8).n_control

Modules: :mod:`~personalize.experiments.readout` (the readout),
:mod:`~personalize.experiments.stats` (intervals and tests, statsmodels /
scipy), :mod:`~personalize.experiments.guards` (sample-ratio check and the
other guards), :mod:`~personalize.experiments.cuped`,
:mod:`~personalize.experiments.planning` and
:mod:`~personalize.experiments.sequential` (always-valid mSPRT p-values).
"""

from personalize.data.campaign import CampaignData
from personalize.experiments.cuped import Cuped
from personalize.experiments.guards import Guard, SRMResult, srm_check
from personalize.experiments.planning import (Plan, mde_mean, mde_proportion, sample_size_mean,
                                              sample_size_proportion)
from personalize.experiments.readout import METRICS, ArmResult, Lift, Readout, readout
from personalize.experiments.sequential import always_valid_p, msprt_pvalues, sequential_looks
from personalize.experiments.stats import Estimate

__all__ = [
    "CampaignData", "Cuped", "Guard", "SRMResult", "srm_check", "Plan", "mde_mean", "mde_proportion",
    "sample_size_mean", "sample_size_proportion", "METRICS", "ArmResult", "Lift", "Readout", "readout",
    "always_valid_p", "msprt_pvalues", "sequential_looks", "Estimate",
]
