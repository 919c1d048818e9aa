#!/usr/bin/env python3
"""Writes a MovieLens-shaped synthetic ratings set (no download) for the two-tower
retrieval example: crates/ferroflow-keras/data/movielens_synth.csv.gz with columns

    user_id,movie_title,genre,rating,timestamp

as MovieLens 100K has them (user ids as strings, titles such as "Quiet Harbor (1994)").
Users have a taste over 18 genres (a sparse Dirichlet draw); each user rates 20-120
movies, mostly from the genres they like and by movie popularity (Zipf), so a model that
learns tastes from co-occurrence retrieves a held-out movie well above chance.

    python3 tools/make_movielens_synth.py [--users 943] [--movies 1682] [--seed 42]
"""
import argparse
import gzip
import os

import numpy as np

GENRES = [
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
]
ADJECTIVES = [
    "Quiet", "Broken", "Golden", "Last", "Silent", "Crimson", "Hidden", "Lonely", "Wild",
    "Distant", "Frozen", "Burning", "Secret", "Lost", "Bright", "Dark", "Endless", "Little",
]
NOUNS = [
    "Harbor", "River", "Empire", "Garden", "Mirror", "Horizon", "Station", "Letter", "Island",
    "Shadow", "Promise", "Voyage", "Kingdom", "Winter", "Summer", "Road", "Heart", "Signal",
]


def titles(n, rng):
    seen = {}
    out = []
    for _ in range(n):
        base = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}"
        year = int(rng.integers(1930, 1999))
        t = f"{base} ({year})"
        k = seen.get(t, 0)
        seen[t] = k + 1
        if k:
            t = f"{base} {k + 1} ({year})"
        out.append(t)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=943)
    ap.add_argument("--movies", type=int, default=1682)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument(
        "--out",
        default=os.path.join(
            os.path.dirname(__file__), "..", "crates", "ferroflow-keras", "data",
            "movielens_synth.csv.gz",
        ),
    )
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    g = len(GENRES)
    movie_genre = rng.integers(0, g, a.movies)
    popularity = 1.0 / np.arange(1, a.movies + 1) ** 0.8
    rng.shuffle(popularity)
    names = titles(a.movies, rng)
    by_genre = [np.flatnonzero(movie_genre == k) for k in range(g)]
    rows = []
    t = 874_724_710  # MovieLens 100K's first timestamp
    for u in range(a.users):
        taste = rng.dirichlet(np.full(g, 0.15))
        n = int(rng.integers(20, 121))
        chosen = set()
        while len(chosen) < n:
            if rng.random() < 0.85:
                k = rng.choice(g, p=taste)
                pool = by_genre[k]
            else:
                pool = np.arange(a.movies)
            p = popularity[pool] / popularity[pool].sum()
            chosen.add(int(rng.choice(pool, p=p)))
        for m in sorted(chosen, key=lambda _: rng.random()):
            liked = taste[movie_genre[m]]
            rating = int(np.clip(np.round(2.5 + 6 * liked + rng.normal(0, 0.8)), 1, 5))
            t += int(rng.integers(1, 400))
            rows.append((str(u + 1), names[m], GENRES[movie_genre[m]], rating, t))
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with gzip.GzipFile(a.out, "wb", mtime=0) as f:
        f.write(b"user_id,movie_title,genre,rating,timestamp\n")
        for r in rows:
            f.write(f'{r[0]},"{r[1]}",{r[2]},{r[3]},{r[4]}\n'.encode())
    print(f"{a.out}: {len(rows)} ratings, {a.users} users, {a.movies} movies")


if __name__ == "__main__":
    main()
