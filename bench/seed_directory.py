#!/usr/bin/env python3
"""Seeds an org through Herald's own API: DEPARTMENTS departments, USERS users
spread evenly over them. Usage: seed_directory.py BASE_URL TOKEN DEPARTMENTS USERS
Prints the id of the first department (the one bench/http updates)."""
import http.client
import json
import sys
import threading
import urllib.parse

base, token, n_depts, n_users = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
url = urllib.parse.urlparse(base)
THREADS = 8


def client():
    return http.client.HTTPConnection(url.hostname, url.port, timeout=60)


def post(conn, path, body):
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json", "X-Auth-Token": token})
    res = conn.getresponse()
    data = res.read()
    if res.status != 200:
        raise SystemExit(f"seed: POST {path} answered {res.status}: {data[:200]!r}")
    return json.loads(data)


def run(worker, count):
    threads = [threading.Thread(target=worker, args=(t, count)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


dept_ids = [None] * n_depts


def make_depts(t, count):
    conn = client()
    for i in range(t, count, THREADS):
        dept_ids[i] = post(conn, "/api/v1/departments", {"name": f"Department {i:04d}"})["data"]["id"]


def make_users(t, count):
    conn = client()
    for i in range(t, count, THREADS):
        body = {"name": f"User {i:06d}", "email": f"user{i:06d}@example.com", "departmentIds": [dept_ids[i % n_depts]]}
        post(conn, "/api/v1/users", body)


run(make_depts, n_depts)
run(make_users, n_users)
print(dept_ids[0])
