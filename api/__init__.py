"""The GraphQL edge: strawberry types, inputs, mutations, loaders, context and permissions."""
