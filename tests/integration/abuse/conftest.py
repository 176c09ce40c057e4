"""Fixtures for the abuse-resistance tests: one simulator stack per module
(bench/sim/simlib.py: PKI, demo API, `portcullis serve` with rate limits
and the detectors on), small enough for the sanitizer build."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench" / "sim"))

import portcullis_helpers as H  # noqa: E402
import simlib  # noqa: E402


def small_scenario():
    """Four partners (one private_key_jwt + DPoP) at modest rates, a 5 s
    learning period, every attack client registered; each test runs the
    attack it needs for a few seconds."""
    sc = simlib.default_scenario()
    sc.update(partners=4, dpop_partners=1, day=30.0, peak_rate=[1.0, 4.0], records=20000,
              vehicles=300, burst_every=20.0, burst_size=[5, 15], learning_period="5s")
    sc["detect"] = dict(sc["detect"], learning_period="5s")
    return sc


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    sc = small_scenario()
    st = simlib.Stack(tmp_path_factory.mktemp("sim"), sc, binary=H.BIN, log=lambda m: None)
    if not st.defenses:
        problems = st.stop()
        assert not problems, problems
        pytest.skip("this build refuses the abuse-resistance config "
                    f"(left out: {', '.join(st.dropped)}): {st.check_error}")
    yield st
    problems = st.stop()
    assert not problems, "\n".join(problems)


@pytest.fixture
def run_sim(stack):
    """run_sim({"enum-fast": {...}}, duration) -> the report (bench/sim's)."""
    def run(attacks, duration):
        sim = simlib.Simulation(stack, say=lambda m: None, attacks=attacks, duration=duration)
        sim.run(progress=0)
        rep = simlib.build_report(sim)
        errors = [a.error for a in sim.attacks + sim.partners if a.error]
        assert not errors, "\n".join(errors)
        return rep
    return run
