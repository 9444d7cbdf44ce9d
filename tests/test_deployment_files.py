"""The configuration and deployment files are well formed and agree with the repository."""

from pathlib import Path

import yaml

from jobs import settings
from jobs.flink_setup import flatten_yaml, job_configuration

REPO_ROOT = settings.REPO_ROOT


def test_flink_config_flattens_to_dotted_keys():
    flat = flatten_yaml({"execution": {"checkpointing": {"interval": "10 s"}}, "debug": True})

    assert flat == {"execution.checkpointing.interval": "10 s", "debug": "true"}


def test_job_configuration_takes_job_settings_and_leaves_cluster_settings_out():
    configuration = job_configuration({"execution.checkpointing.interval": "3 s"})

    assert configuration.get_string("execution.checkpointing.interval", "") == "3 s"
    assert configuration.get_string("execution.checkpointing.mode", "") == "EXACTLY_ONCE"
    assert configuration.get_string("python.execution-mode", "") == "process"
    assert configuration.get_string("restart-strategy.type", "") == "exponential-delay"
    assert not configuration.contains_key("rest.port")
    assert not configuration.contains_key("taskmanager.memory.process.size")


def test_flink_config_names_absolute_checkpoint_directory():
    flat = flatten_yaml(yaml.safe_load(settings.FLINK_CONF_FILE.read_text()))

    assert flat["execution.checkpointing.dir"].startswith("file:///")
    assert flat["state.backend.type"] in {"hashmap", "rocksdb", "forst"}


def test_compose_file_builds_from_files_that_exist():
    compose = yaml.safe_load((REPO_ROOT / "docker" / "compose.yaml").read_text())

    assert {"kafka", "postgres", "jobmanager", "taskmanager"} <= set(compose["services"])
    for service in compose["services"].values():
        if "build" in service:
            context = (REPO_ROOT / "docker" / service["build"]["context"]).resolve()
            assert (context / service["build"]["dockerfile"]).is_file()


def test_dockerfile_copies_only_what_the_repository_or_setup_provides():
    dockerfile = (REPO_ROOT / "docker" / "Dockerfile").read_text().splitlines()
    sources = [
        source for line in dockerfile if line.startswith("COPY ") for source in line.split()[1:-1]
    ]

    assert sources
    for source in sources:
        if source.startswith(".stack/"):
            continue  # copied by scripts/setup.sh before a build
        assert (REPO_ROOT / source).exists(), source


def test_migrations_are_numbered_without_gaps():
    versions = sorted(
        int(path.name[1:4]) for path in Path(REPO_ROOT / "sql" / "migrations").glob("V*.sql")
    )

    assert versions == list(range(1, len(versions) + 1))
