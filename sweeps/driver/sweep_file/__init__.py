"""The sweep file: YAML as people write it, its schema, and the checks that validate it."""
