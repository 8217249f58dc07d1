"""Results of a live experiment: stored counts → the results document → JSON or CSV.

Pure code (no Flask, no database): :func:`results_document` takes the
experiment, its :class:`abconv.store.counts.ResultCounts` and the time, and
returns the document the API, the CSV and the pages show.
"""

from abconv.results.csv_export import CSV_COLUMNS, results_csv, spreadsheet_safe
from abconv.results.document import (
    analysis_input,
    caps,
    results_document,
    stored_data_checked,
)

__all__ = [
    "CSV_COLUMNS",
    "analysis_input",
    "caps",
    "results_csv",
    "results_document",
    "spreadsheet_safe",
    "stored_data_checked",
]
