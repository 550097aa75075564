"""The PNG cache: hits give identical bytes without new work, the bounds hold, weights never mix."""

from collections import Counter

from webapp.cache import LruCache

DIGIT = {"labels": [0, 0, 0, 1, 0, 0, 0, 0, 0, 0], "seed": 5}


def counted(cache: LruCache) -> Counter:
    """From now on, counts of the cache's lookups and of those that had to make their bytes."""
    counts = Counter(lookups=0, made=0)
    get_or_make = cache.get_or_make

    def counting(key, make):
        def counted_make():
            counts["made"] += 1
            return make()

        counts["lookups"] += 1
        return get_or_make(key, counted_make)

    cache.get_or_make = counting
    return counts


def test_cache_hit_returns_the_same_bytes_without_making_them_again():
    cache = LruCache(max_entries=4, max_bytes=1000)
    calls = []
    first = cache.get_or_make("a", lambda: calls.append(1) or b"png-a")
    again = cache.get_or_make("a", lambda: calls.append(1) or b"other")
    assert first == again == b"png-a" and calls == [1]


def test_cache_bounds_entries_and_bytes_dropping_the_least_recently_used():
    cache = LruCache(max_entries=3, max_bytes=25)
    for key in "abc":
        cache.get_or_make(key, lambda: b"x" * 8)
    cache.get_or_make("a", lambda: b"unused")  # a is now the most recently used
    cache.get_or_make("d", lambda: b"y" * 8)
    assert len(cache) == 3 and cache.nbytes == 24
    assert cache.get_or_make("a", lambda: b"new") == b"x" * 8  # kept
    assert cache.get_or_make("b", lambda: b"new") == b"new"  # dropped
    for i in range(100):
        cache.get_or_make(i, lambda: b"z" * 10)
        assert len(cache) <= 3 and cache.nbytes <= 25
    assert cache.get_or_make("big", lambda: b"w" * 26) == b"w" * 26 and "big" not in cache._items


def test_generate_answers_repeats_from_the_cache_with_identical_bytes(make_app, generator_dir):
    app = make_app(GENERATOR_DIR=generator_dir)
    client, cache = app.test_client(), app.extensions["networks"].answers
    counts = counted(cache)
    first = client.post("/generate", json=DIGIT).data
    second = client.post("/generate", json=DIGIT).data
    by_get = client.get("/generate?labels=0,0,0,1,0,0,0,0,0,0&seed=5").data
    assert first == second == by_get
    assert len(cache) == 1 and counts == {"lookups": 3, "made": 1}
    client.post("/generate", json={**DIGIT, "scale": 2})
    assert len(cache) == 2


def test_generators_with_other_weights_do_not_share_cache_entries(
    make_app, generator_dir, other_generator_dir
):
    app = make_app(GENERATOR_DIR=generator_dir)
    first = app.test_client().post("/generate", json=DIGIT).data
    other = make_app(GENERATOR_DIR=other_generator_dir)
    other.extensions["networks"].answers = app.extensions["networks"].answers  # one cache, two weights
    assert other.test_client().post("/generate", json=DIGIT).data != first
    assert len(app.extensions["networks"].answers) == 2
