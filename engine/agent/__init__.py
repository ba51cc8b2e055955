"""The API agent authors write against: the App registry, the run context, approval policies,
guards, argument schemas and who may decide. Pure."""
