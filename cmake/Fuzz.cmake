# libFuzzer targets of the decoders of untrusted bytes (src/parse), see docs/reliability.md. Included by
# tests/fuzz (which builds them) and by SanitizerTests (which registers the short CI run); keep it idempotent.
set(UNLEARN_FUZZ_TARGETS safetensors json tokenizer_files checkpoint_attributes)

# The libFuzzer executables exist only in the ASan+UBSan tree: clang, -fsanitize=fuzzer on top of the tree's
# address,undefined. The parse and util sources are compiled a second time with coverage instrumentation
# (-fsanitize=fuzzer-no-link) so that libFuzzer sees the decoders' edges, not only the harness's.
function(unlearn_add_fuzz_targets)
  if(NOT (UNLEARN_SANITIZE AND CMAKE_CXX_COMPILER_ID STREQUAL "Clang"))
    return()
  endif()
  get_target_property(_parse unlearn_parse SOURCES)
  get_target_property(_util unlearn_util SOURCES)
  list(TRANSFORM _parse PREPEND ${PROJECT_SOURCE_DIR}/src/parse/)
  list(TRANSFORM _util PREPEND ${PROJECT_SOURCE_DIR}/src/util/)
  add_library(unlearn_parse_fuzz STATIC ${_parse} ${_util})
  target_include_directories(unlearn_parse_fuzz PUBLIC ${PROJECT_SOURCE_DIR}/include)
  target_compile_options(unlearn_parse_fuzz PUBLIC -fsanitize=fuzzer-no-link)
  target_link_libraries(unlearn_parse_fuzz PRIVATE unlearn_warnings)
  foreach(t IN LISTS UNLEARN_FUZZ_TARGETS)
    add_executable(fuzz_${t} ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_${t}.cpp)
    target_link_libraries(fuzz_${t} PRIVATE unlearn_parse_fuzz unlearn_warnings)
    target_link_options(fuzz_${t} PRIVATE -fsanitize=fuzzer)
  endforeach()
endfunction()
