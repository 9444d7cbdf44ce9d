"""Window records, drift events and alerts into PostgreSQL, as upserts through JDBC.

The Python ``JdbcSink`` wrapper cannot run on Flink 2.x, so the rows take the Table API's
``jdbc`` connector: each JSON stream becomes a table, SQL picks the columns out of the JSON in
the JVM, and a primary key on every sink table turns a replay into an upsert. The URL asks the
driver to send strings untyped, so that PostgreSQL itself casts JSON text into JSONB columns.
"""

from jobs import settings
from udfs.metrics import METRIC_NAMES

SINK_TABLES = {
    "window_stats": """
        window_id STRING, key STRING, first_row BIGINT, last_row BIGINT,
        first_partition INT, last_partition INT, source STRING, row_count INT,
        drifted BOOLEAN, drift_score DOUBLE, reference_size INT, config_version STRING,
        evaluated_at TIMESTAMP(3), statistics STRING, labelled INT, frauds INT, flagged INT,
        accuracy DOUBLE, `precision` DOUBLE, recall DOUBLE, f1 DOUBLE, auprc DOUBLE,
        model_version STRING,
        PRIMARY KEY (window_id) NOT ENFORCED""",
    "drift_events": """
        window_id STRING, key STRING, first_row BIGINT, last_row BIGINT,
        first_partition INT, last_partition INT, source STRING, drift_score DOUBLE,
        drifted_features STRING, config_version STRING, detected_at TIMESTAMP(3),
        explanation STRING,
        PRIMARY KEY (window_id) NOT ENFORCED""",
    "flagged_transactions": """
        transaction_id STRING, key STRING, source STRING, type STRING, amount DOUBLE,
        name_orig STRING, name_dest STRING, risk_score DOUBLE, drift_score DOUBLE,
        model_probability DOUBLE, rule_score DOUBLE, reasons STRING, model_version STRING,
        is_fraud BOOLEAN, flagged_at TIMESTAMP(3),
        PRIMARY KEY (transaction_id) NOT ENFORCED""",
    "fraud_metrics": """
        source STRING, `scope` STRING, windows BIGINT, labelled BIGINT, frauds BIGINT,
        flagged BIGINT,
        true_positives BIGINT, false_positives BIGINT, false_negatives BIGINT,
        true_negatives BIGINT, accuracy DOUBLE, `precision` DOUBLE, recall DOUBLE, f1 DOUBLE,
        auprc DOUBLE, model_version STRING, config_version STRING, updated_at TIMESTAMP(3),
        PRIMARY KEY (source, `scope`) NOT ENFORCED""",
}


def _value(name, sql_type="STRING"):
    if sql_type == "STRING":
        return f"JSON_VALUE(record, '$.{name}')"
    return f"CAST(JSON_VALUE(record, '$.{name}') AS {sql_type})"


WINDOW_POSITION_COLUMNS = ", ".join(
    [
        _value("window_id"),
        _value("key"),
        _value("first_row", "BIGINT"),
        _value("last_row", "BIGINT"),
        _value("first_partition", "INT"),
        _value("last_partition", "INT"),
        _value("source"),
    ]
)
# The JDBC connector takes no TIMESTAMP_LTZ; times go out as UTC (the job's session zone).
EVALUATED_AT = f"CAST(TO_TIMESTAMP_LTZ({_value('evaluated_at_ms', 'BIGINT')}, 3) AS TIMESTAMP(3))"


def _metric_columns(prefix):
    """The five metrics under ``prefix``; an undefined one is a JSON null, read as SQL NULL."""
    return ", ".join(_value(prefix + name, "DOUBLE") for name in METRIC_NAMES)


INSERTS = {
    "window_stats": (
        "windows",
        f"""
        SELECT {WINDOW_POSITION_COLUMNS}, {_value("row_count", "INT")},
               {_value("drifted", "BOOLEAN")}, {_value("drift_score", "DOUBLE")},
               {_value("reference_size", "INT")}, {_value("config_version")}, {EVALUATED_AT},
               record, {_value("metrics.labelled", "INT")}, {_value("metrics.frauds", "INT")},
               {_value("metrics.flagged", "INT")}, {_metric_columns("metrics.")},
               {_value("model_version")}
        FROM windows""",
    ),
    "drift_events": (
        "drift_events",
        f"""
        SELECT {WINDOW_POSITION_COLUMNS}, {_value("drift_score", "DOUBLE")},
               ARRAY_JOIN(JSON_QUERY(record, '$.drifted_features' RETURNING ARRAY<STRING>), ','),
               {_value("config_version")}, {EVALUATED_AT},
               JSON_QUERY(record, '$.explanation')
        FROM drift_events""",
    ),
    "flagged_transactions": (
        "flagged",
        f"""
        SELECT {_value("transaction_id")}, {_value("key")}, {_value("source")}, {_value("type")},
               {_value("amount", "DOUBLE")}, {_value("nameOrig")}, {_value("nameDest")},
               {_value("risk_score", "DOUBLE")}, {_value("drift_score", "DOUBLE")},
               {_value("model_probability", "DOUBLE")}, {_value("rule_score", "DOUBLE")},
               JSON_QUERY(record, '$.reasons'), {_value("model_version")},
               {_value("isFraud", "INT")} = 1, CAST(CURRENT_TIMESTAMP AS TIMESTAMP(3))
        FROM flagged""",
    ),
    "fraud_metrics": (
        "metric_totals",
        f"""
        SELECT {_value("source")}, {_value("scope")}, {_value("windows", "BIGINT")},
               {_value("labelled", "BIGINT")},
               {_value("frauds", "BIGINT")}, {_value("flagged", "BIGINT")},
               {_value("true_positives", "BIGINT")}, {_value("false_positives", "BIGINT")},
               {_value("false_negatives", "BIGINT")}, {_value("true_negatives", "BIGINT")},
               {_metric_columns("")}, {_value("model_version")},
               {_value("config_version")}, {EVALUATED_AT}
        FROM metric_totals""",
    ),
}


def attach(table_env, outputs):
    """Add the PostgreSQL sinks to the job, fed from the JSON streams in ``outputs``."""
    for name in {stream for stream, _ in INSERTS.values()}:
        table_env.create_temporary_view(
            name, table_env.from_data_stream(outputs[name]).alias("record")
        )
    table_env.get_config().set("table.local-time-zone", "UTC")
    statements = table_env.create_statement_set()
    for table, (_, query) in INSERTS.items():
        table_env.execute_sql(f"""
            CREATE TEMPORARY TABLE {table}_sink ({SINK_TABLES[table]}) WITH (
                'connector' = 'jdbc',
                'url' = '{settings.POSTGRES_JDBC_URL}?stringtype=unspecified',
                'table-name' = '{table}',
                'username' = '{settings.POSTGRES_USER}',
                'password' = '{settings.POSTGRES_PASSWORD}',
                'sink.buffer-flush.interval' = '1 s'
            )""")
        statements.add_insert_sql(f"INSERT INTO {table}_sink {query}")
    statements.attach_as_datastream()
