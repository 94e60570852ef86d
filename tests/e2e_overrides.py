"""The command-line overrides that make an embedded end-to-end run's evaluation small (4 prompts, short
generations, no bars), shared by the methods' slow CLI tests."""

SMALL_EVAL = [
    "task.num_test_prompts=4",
    "eval.stats_samples=40",
    "eval.progress=false",
    "eval.samples_per_point=1",
    "eval.generation.max_new_tokens=12",
]
