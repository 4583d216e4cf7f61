"""Where a run's time goes: phases add up by name, a Spark job's phases come back from its
stdout after what launching it took, and the CLI's line names every phase."""

from __future__ import annotations

from jstore import phases


def test_phases_add_up_by_name_in_the_order_first_timed_and_only_while_collecting() -> None:
    phases.add("validate", 1.0)  # nobody collects: nothing kept, nothing raised

    with phases.collecting() as collected:
        phases.add("spark job", 2.0)
        phases.add("validate", 1.5)
        phases.add("spark job", 0.5)
        with phases.timed("publish"):
            pass

    assert list(collected) == ["spark job", "validate", "publish"]
    assert (collected["spark job"], collected["validate"]) == (2.5, 1.5)
    assert collected["publish"] >= 0.0


def test_a_jobs_phases_follow_what_launching_it_took_of_its_wall_time() -> None:
    stdout = "\n".join(
        [
            '{"view": "v", "rows": 3}',
            phases.job_line({"job start": 1.25, "spark session": 2.0, "spark job": 4.5}),
        ]
    )

    with phases.collecting() as collected:
        phases.add_job_phases(stdout, wall=10.0, launch="spark-submit")

    assert collected == {
        "spark-submit": 2.25,
        "job start": 1.25,
        "spark session": 2.0,
        "spark job": 4.5,
    }


def test_a_job_without_phases_is_all_launch() -> None:
    with phases.collecting() as collected:
        phases.add_job_phases("no phases here\n", wall=3.0, launch="spark-submit")

    assert collected == {"spark-submit": 3.0}


def test_the_summary_names_each_phase_and_what_they_leave_of_the_total() -> None:
    line = phases.summary({"start": 0.62, "validate": 2.0}, total=3.0, rest="registry")

    assert line == "took 3.0 s: start 0.6, validate 2.0, registry 0.4"


def test_this_process_has_an_age() -> None:
    assert phases.process_age() > 0.0
