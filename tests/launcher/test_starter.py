"""The settings environment each run gets: what Prefect renders, rendered once per settings object."""

from __future__ import annotations

from prefect.settings import PREFECT_LOGGING_LEVEL, get_current_settings, temporary_settings

from flowhook.launcher import FlowhookWorker
from flowhook.launcher.starter import settings_environment


def test_the_settings_environment_is_prefects_and_follows_a_change_of_settings() -> None:
    assert settings_environment() == get_current_settings().to_environment_variables(exclude_unset=True)
    with temporary_settings(updates={PREFECT_LOGGING_LEVEL: "ERROR"}):
        assert settings_environment()["PREFECT_LOGGING_LEVEL"] == "ERROR"
        assert settings_environment() == get_current_settings().to_environment_variables(exclude_unset=True)
    assert settings_environment().get("PREFECT_LOGGING_LEVEL") != "ERROR"


def test_a_copy_is_returned_so_a_run_cannot_change_the_next_runs() -> None:
    first = settings_environment()
    first["PREFECT_SOMETHING_ELSE"] = "x"
    assert "PREFECT_SOMETHING_ELSE" not in settings_environment()


def test_the_worker_builds_each_runs_base_environment_from_it() -> None:
    assert FlowhookWorker.job_configuration._base_environment() == settings_environment()
    assert FlowhookWorker.get_default_base_job_template() == FlowhookWorker.__mro__[1].get_default_base_job_template()
