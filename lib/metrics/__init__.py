"""OCR metrics: normalization profiles, text metrics, TEDS, statistics, the metric registry and result scoring.

The public names are re-exported by ``lib.utils.count_metric`` (the original project's module path); import from
either. Definitions: docs/METRICS.md and each module's docstring.
"""

from lib.metrics.normalization import DEFAULT_PROFILE, PROFILES, ProfileError, check_profile, normalize, t2s
from lib.metrics.registry import (METRICS, Metric, MetricError, aggregate_labels, get_metric, headline_keys,
                                  list_metrics, pair_metrics, register_metric)
from lib.metrics.scoring import paired_comparison, score_result_file, score_texts
from lib.metrics.tables import TableParseError, TableTimeout, has_table, parse_table, table_cell_text, teds, teds_s
from lib.metrics.text import (bag_f1, cer, cer_clipped, error_anatomy, exact_match, is_st_confusion, lcs_f1, ned,
                              repetition_loop, score_pairs, seal_ned)

__all__ = ["DEFAULT_PROFILE", "PROFILES", "ProfileError", "check_profile", "normalize", "t2s", "METRICS", "Metric",
           "MetricError", "get_metric", "list_metrics", "pair_metrics", "headline_keys", "aggregate_labels",
           "register_metric", "paired_comparison", "score_result_file",
           "score_texts", "TableParseError", "TableTimeout", "has_table", "parse_table", "table_cell_text", "teds",
           "teds_s", "bag_f1", "cer", "cer_clipped", "error_anatomy", "exact_match", "is_st_confusion", "lcs_f1",
           "ned", "repetition_loop", "score_pairs", "seal_ned"]
