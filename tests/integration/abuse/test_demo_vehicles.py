"""The demo API's tracking route, which the simulator's scrape attack
polls: GET /vehicles/{id}/position for V + 6 digits below --vehicles."""

import http.client
import json
import time

import simlib


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, json.loads(r.read())
    finally:
        c.close()


def test_vehicle_positions(tmp_path):
    demo = simlib.DemoApi(tmp_path, records=10, vehicles=50)
    try:
        st, body = get(demo.port, "/vehicles/V000049/position")
        assert st == 200, body
        assert body["vehicle_id"] == "V000049"
        assert -90 < body["lat"] < 90 and -180 < body["lon"] < 180, body
        assert 20 <= body["speed_kmh"] < 80 and 0 <= body["heading"] < 360, body
        assert body["at"].endswith("Z"), body
        # it moves: a few seconds later the same vehicle is elsewhere
        time.sleep(2.2)
        _, later = get(demo.port, "/vehicles/V000049/position")
        assert (later["lat"], later["lon"]) != (body["lat"], body["lon"]), (body, later)
        # another vehicle is somewhere else
        _, other = get(demo.port, "/vehicles/V000000/position")
        assert (other["lat"], other["lon"]) != (later["lat"], later["lon"])
        for bad in ("/vehicles/V000050/position", "/vehicles/V00001/position",
                    "/vehicles/V0000001/position", "/vehicles/v000001/position",
                    "/vehicles/X000001/position", "/vehicles/V000001",
                    "/vehicles/V000001/positions", "/vehicles/V000001/position/x",
                    "/vehicles/", "/vehicles/V00000A/position"):
            st, body = get(demo.port, bad)
            assert st == 404, (bad, body)
    finally:
        problems = demo.stop()
        assert not problems, problems
