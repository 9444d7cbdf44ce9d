"""Build a Flink execution environment from the project's ``flink-conf/config.yaml``.

On a standalone cluster the configuration reaches the job from the cluster itself; on a local
mini-cluster nothing reads ``flink-conf/`` unless the job does, so the job-level part of that file
(checkpointing, state backend, restart strategy, Python execution) is applied here. Settings that
describe the cluster's own processes (memory, ports, addresses, metric reporters) are left out:
a mini-cluster inside a test has no use for them, and its REST port would clash with a cluster
running beside it.
"""

import logging
import os
import site
import sys

import yaml
from pyflink.common import Configuration
from pyflink.datastream import StreamExecutionEnvironment

from jobs import settings

logger = logging.getLogger(__name__)

# Read by PyFlink when a job starts: "loopback" or "process" (its own names, not Flink options).
WORKER_MODE_VARIABLE = "_python_worker_execution_mode"
JOB_LEVEL_PREFIXES = (
    "execution.",
    "state.",
    "restart-strategy.",
    "python.",
    "pipeline.",
    "parallelism.",
)


def flatten_yaml(tree, prefix=""):
    """Turn nested YAML mappings into Flink's dotted keys with string values."""
    flat = {}
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(flatten_yaml(value, prefix=f"{key}."))
        else:
            flat[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return flat


def job_configuration(overrides=None, conf_file=settings.FLINK_CONF_FILE):
    """Return the job-level settings of ``conf_file``, then ``overrides``, as a Configuration.

    Parameters
    ----------
    overrides
        Dotted Flink keys and values that win over the file, for example
        ``{"execution.checkpointing.interval": "2 s"}``.
    conf_file
        The YAML file to read; the project's ``flink-conf/config.yaml`` unless told otherwise.
    """
    # Before anything here starts the Java gateway, which copies the environment once.
    export_python_path_for_workers()
    with open(conf_file, encoding="utf-8") as handle:
        every_setting = flatten_yaml(yaml.safe_load(handle) or {})
    chosen = {
        key: value for key, value in every_setting.items() if key.startswith(JOB_LEVEL_PREFIXES)
    }
    chosen.update({key: str(value) for key, value in (overrides or {}).items()})

    configuration = Configuration()
    for key, value in chosen.items():
        configuration.set_string(key, value)
    return configuration


def export_python_path_for_workers():
    """Put this interpreter's site-packages and the project on PYTHONPATH for Flink's workers.

    In thread mode Flink embeds CPython in the TaskManager through pemja, which starts from the
    base installation behind ``python.executable``: a virtual environment's site-packages (where
    pyflink, numpy and this project live) is not on its path, and neither are the folders of an
    editable install. The embedded interpreter does add what PYTHONPATH holds, and a local
    mini-cluster inherits this process's environment, so exporting it here is enough locally;
    ``scripts/stack.sh`` exports the same for the standalone cluster.
    """
    wanted = [*site.getsitepackages(), str(settings.REPO_ROOT)]
    present = [path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep) if path]
    os.environ["PYTHONPATH"] = os.pathsep.join(present + [p for p in wanted if p not in present])


def create_environment(overrides=None, with_connectors=True):
    """Create the execution environment every job of the project starts from.

    Parameters
    ----------
    overrides
        Dotted Flink keys that win over ``flink-conf/config.yaml``.
    with_connectors
        Add the Kafka and JDBC connector jars that ``scripts/setup.sh`` copied; a job that uses
        neither can leave them out and start faster.
    """
    # On a mini-cluster PyFlink would otherwise run the Python workers inside this process
    # ("loopback"), where they share its interpreter lock and rewrite its environment and
    # working directory. Separate worker processes behave as they do on a cluster.
    os.environ.setdefault(WORKER_MODE_VARIABLE, "process")
    configuration = job_configuration(overrides)
    if not configuration.contains_key("python.executable"):
        # Flink starts its Python workers with the `python` on PATH unless told otherwise, and
        # that one rarely has pyflink and this project installed; the interpreter running the
        # job does. A cluster on other machines passes its own with -pyexec or the override.
        configuration.set_string("python.executable", sys.executable)
    if with_connectors:
        # pipeline.jars ships the jars with the job graph, so the same job runs on a mini-cluster
        # and on a standalone cluster whose lib/ folder does not hold them.
        configuration.set_string("pipeline.jars", ";".join(settings.connector_jars()))
    return StreamExecutionEnvironment.get_execution_environment(configuration)
