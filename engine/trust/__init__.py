"""Proof of who sent a command, and what they may do: signatures (`jws`), the trust store
(`store`), the gate every command passes (`gate`), principals in one canonical form
(`principal`), the deployment's access rules (`access`), local keys and trust files (I/O:
`keys`, `loading`). Import the modules themselves; this face loads nothing."""
