// Intentionally empty: the baseline of the no-op benchmark (node + the tsx loader, nothing else).
export {};
