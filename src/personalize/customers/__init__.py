"""Customers: the bundle's customer table, consent, and audiences (customer lists).

    from personalize.customers import customer_table, select_audience, consent_mask, CONSENT_CHANNELS
    table = customer_table(ds)                                   # one row per customer
    select_audience(table, tiers=["Gold"], min_churn_risk=0.7, consent="email")
"""

from personalize.customers.audience import (DEFAULT_AUDIENCE_FIELDS, LABEL_COLUMNS, PERSONAL_COLUMNS,
                                            SERVICE_RECOVERY_FIELDS, audience_columns, audience_mask, audience_page,
                                            page_of, select_audience, service_recovery, valid_values)
from personalize.customers.consent import CONSENT_CHANNELS, consent_column, consent_flags, consent_mask
from personalize.customers.summary import CustomerSummary, customer_summary
from personalize.customers.table import customer_table, merge_scores

__all__ = ["CONSENT_CHANNELS", "DEFAULT_AUDIENCE_FIELDS", "LABEL_COLUMNS", "PERSONAL_COLUMNS", "audience_columns",
           "audience_mask", "audience_page", "page_of", "consent_column", "consent_flags", "consent_mask", "customer_table",
           "merge_scores", "select_audience", "service_recovery", "SERVICE_RECOVERY_FIELDS", "valid_values",
           "CustomerSummary", "customer_summary"]
