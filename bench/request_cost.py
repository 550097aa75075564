"""CPU time of the largest request each endpoint accepts (the caps keep each under 100 ms).

    python -m bench.request_cost                 # the shipped weights/
    python -m bench.request_cost --repeats 10

Each request is sent through Flask's test client with a fresh seed every time (so the PNG cache
never answers), and the process CPU time it took is measured (BLAS threads included). Prints one
JSON object: the minimum and median milliseconds for each request, and the machine.
"""

import argparse
import json
import statistics
import time

from bench.machine import machine_info
from webapp import create_app
from webapp.limits import LARGEST_REQUESTS


def with_seed(body: dict, seed: int) -> dict:
    """The same request with another seed wherever it names one."""
    if "seeds" in body:
        return {**body, "seeds": [seed + s for s in body["seeds"]]}
    if "from" in body:
        return {**body, "from": {**body["from"], "seed": seed}}
    return {**body, "seed": seed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed requests of each kind")
    args = parser.parse_args()

    client = create_app({"TESTING": True}).test_client()
    results = {}
    for name, (path, body) in LARGEST_REQUESTS.items():
        spent = []
        for repeat in range(args.repeats + 1):  # the first one warms up
            started = time.process_time()
            response = client.post(path, json=with_seed(body, 1000 * repeat + 7))
            spent.append(1000 * (time.process_time() - started))
            assert response.status_code == 200, response.json
        results[name] = {
            "min_ms": round(min(spent[1:]), 1),
            "median_ms": round(statistics.median(spent[1:]), 1),
        }
    print(json.dumps({"benchmark": "request_cost", "requests": results, "machine": machine_info()}, indent=2))


if __name__ == "__main__":
    main()
