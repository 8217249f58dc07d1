"""Experiment files: parse, validate, watch (no Flask, no database).

The public face of experiment files: the values (:class:`Experiment`,
:class:`Variant`, :class:`Goal`, :class:`AnalysisSettings`), the loaders
(:func:`load_experiment_file`, :func:`check_directory`) and
:class:`ExperimentRegistry`, which keeps the current experiments of a folder
for a running server. The format is described in the README (section
"Experiment files"). Modules: ``model`` (the values), ``files`` (reading),
``rules`` and ``toml_fields`` (checking), ``toml_lines`` (line numbers),
``layers`` (the shares of mutual-exclusion layers, across files),
``registry`` (watching a folder), ``phases`` (what starts a phase).
"""

from __future__ import annotations

from abconv.experiments import phases
from abconv.experiments.files import check_directory, load_experiment_file, parse_experiment
from abconv.experiments.layers import Layer, Share, allocate_layers
from abconv.experiments.model import (
    ANALYSIS_DEFAULTS,
    AnalysisSettings,
    Experiment,
    ExperimentFileError,
    Goal,
    Problem,
    Variant,
)
from abconv.experiments.registry import ExperimentRegistry

__all__ = [
    "ANALYSIS_DEFAULTS",
    "AnalysisSettings",
    "Experiment",
    "ExperimentFileError",
    "ExperimentRegistry",
    "Goal",
    "Layer",
    "Problem",
    "Share",
    "Variant",
    "allocate_layers",
    "check_directory",
    "load_experiment_file",
    "parse_experiment",
    "phases",
]
