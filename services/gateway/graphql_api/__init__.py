"""The gateway's GraphQL interface at `/graphql` (docs/graphql.md): endpoint.py mounts it."""

PATH = "/graphql"
