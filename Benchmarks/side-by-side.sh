# Shared setup of the side-by-side scripts (sourced, not run): the model, threads, the inferkit binary,
# the ISA flag, the checks and the machine description every result directory carries.
MODEL=${MODEL:-.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}
THREADS=${THREADS:-2}
INFERKIT=${INFERKIT:-$(swift build -c release --show-bin-path 2>/dev/null)/inferkit}
ISA_FLAG=${ISA:+--isa $ISA}
[ -x "$INFERKIT" ] || { echo "error: no inferkit at $INFERKIT; build it with swift build -c release --product inferkit (or set INFERKIT)" >&2; exit 1; }

# need_tool PATH NAME: a llama.cpp tool built by Benchmarks/llama-cpp/build.sh.
need_tool() { [ -x "$1" ] || { echo "error: no $2 at $1; run Benchmarks/llama-cpp/build.sh" >&2; exit 1; }; }

# write_machine DIR: CPU model, count, the vector ISA and the load, into DIR/machine.txt.
write_machine() {
  mkdir -p "$1"
  { lscpu | grep -E "Model name|^CPU\(s\)|Flags" | sed 's/\(Flags:.\{0,40\}\).*\(avx512_vnni\|avx2\).*/\1 … \2 …/'; uptime; } > "$1/machine.txt"
}
