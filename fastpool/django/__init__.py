"""Django database backend: PostgreSQL with fastpool as the connection pool.

    DATABASES = {"default": {
        "ENGINE": "fastpool.django",
        "NAME": "app", ...,
        "OPTIONS": {"pool": {"min_size": 2, "max_size": 10, "timeout": 10}},
    }}

Everything is Django's own PostgreSQL backend (Django >= 5.1) except the pool
behind ``OPTIONS["pool"]``, which is a ``fastpool.ConnectionPool`` taking the
same options as psycopg_pool's.
"""
