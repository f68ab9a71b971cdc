"""Print, as JSON, what a Debian PostgreSQL cluster holds beyond what initdb creates.

Usage: cluster_contents.py <postgresql.conf> <data directory if the file names none>

Read-only, and it reads only file names and sizes in the data directory, so it
answers the same whether the server runs or not (a stopped cluster holds data
too). What counts as data that someone other than initdb created:

- a database whose OID is at least FirstNormalObjectId (16384): initdb gives
  template1, template0 and postgres lower OIDs, every CREATE DATABASE a higher one;
- a relation file numbered 16384 or more in any database: initdb's catalogs
  stay below it (13410 on a fresh 15), every CREATE TABLE/INDEX/SEQUENCE/
  MATERIALIZED VIEW gets a higher one. A catalog rewritten by VACUUM FULL also
  gets one: that errs on the side of keeping the cluster;
- a tablespace (an entry in pg_tblspc);
- large objects (pg_largeobject or its metadata not empty), which live in
  catalogs that initdb created.

Roles and grants alone (rows in catalogs initdb created) do not count: a
cluster without any of the above has no table to lose.
"""
import json
import os
import re
import sys

FIRST_NORMAL_OBJECT_ID = 16384
LARGE_OBJECT_CATALOGS = ('2613', '2995')  # pg_largeobject, pg_largeobject_metadata
RELATION_FILE = re.compile(r'^(\d+)(_[a-z]+)?(\.\d+)?$')


def data_directory(conf_file, default):
    try:
        with open(conf_file) as handle:
            for line in handle:
                match = re.match(r"\s*data_directory\s*=\s*'([^']*)'", line)
                if match:
                    return match.group(1)
    except FileNotFoundError:
        pass
    return default


def contents(datadir):
    found = {'data_directory': datadir, 'user_databases': [], 'user_relation_files': 0,
             'tablespaces': [], 'large_objects': False}
    base = os.path.join(datadir, 'base')
    if not os.path.isdir(base):
        return found
    for database in sorted(os.listdir(base)):
        if not database.isdigit():
            continue
        if int(database) >= FIRST_NORMAL_OBJECT_ID:
            found['user_databases'].append(int(database))
        for name in os.listdir(os.path.join(base, database)):
            match = RELATION_FILE.match(name)
            if match and int(match.group(1)) >= FIRST_NORMAL_OBJECT_ID:
                found['user_relation_files'] += 1
            elif name in LARGE_OBJECT_CATALOGS and os.path.getsize(os.path.join(base, database, name)) > 0:
                found['large_objects'] = True
    tablespaces = os.path.join(datadir, 'pg_tblspc')
    if os.path.isdir(tablespaces):
        found['tablespaces'] = sorted(os.listdir(tablespaces))
    return found


def main():
    conf_file, default = sys.argv[1], sys.argv[2]
    found = contents(data_directory(conf_file, default))
    found['holds_data'] = bool(found['user_databases'] or found['user_relation_files']
                               or found['tablespaces'] or found['large_objects'])
    print(json.dumps(found))


if __name__ == '__main__':
    main()
