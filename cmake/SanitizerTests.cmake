# The ASan+UBSan build as CTest tests of the main build: one test configures and builds a clang-14 -O1 sanitized
# tree (build-asan beside this build dir), the others run its unit tests (leak detection on) and its 2-rank MPI tests
# (leak detection off: Open MPI keeps allocations until exit). Later issues only add tests; these pick them up by label.
find_program(UNLEARN_CLANGXX clang++-14)
find_program(UNLEARN_CLANG clang-14)
if(UNLEARN_CLANGXX AND UNLEARN_CLANG AND NOT UNLEARN_SANITIZE)
  set(_default ON)
else()
  set(_default OFF)
endif()
option(UNLEARN_SANITIZER_TESTS "Register the ASan+UBSan build and its tests" ${_default})

if(UNLEARN_SANITIZER_TESTS)
  set(_asan_dir ${CMAKE_BINARY_DIR}/../build-asan)
  add_test(NAME sanitize_build
           COMMAND ${CMAKE_COMMAND} -E env CCACHE_BASEDIR=${PROJECT_SOURCE_DIR} CCACHE_NOHASHDIR=1
                   bash -c "${CMAKE_COMMAND} -S ${PROJECT_SOURCE_DIR} -B ${_asan_dir} -G Ninja \
-DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=${UNLEARN_CLANGXX} -DCMAKE_C_COMPILER=${UNLEARN_CLANG} \
-DUNLEARN_SANITIZE=ON -DUNLEARN_SANITIZER_TESTS=OFF -DUNLEARN_WARNINGS_AS_ERRORS=${UNLEARN_WARNINGS_AS_ERRORS} \
-DUNLEARN_MPI_TEST_MAX_RANKS=2 >/dev/null && ${CMAKE_COMMAND} --build ${_asan_dir} -j 2")
  set_tests_properties(sanitize_build PROPERTIES TIMEOUT 1800 LABELS "sanitize" FIXTURES_SETUP asan_tree
                       PROCESSORS 2)
  add_test(NAME sanitize_unit COMMAND ${CMAKE_CTEST_COMMAND} --test-dir ${_asan_dir} -L "^unit$" --output-on-failure
                                      --timeout 600)
  add_test(NAME sanitize_mpi_np2 COMMAND ${CMAKE_CTEST_COMMAND} --test-dir ${_asan_dir} -L "^np2$"
                                         --output-on-failure --timeout 600)
  set_tests_properties(sanitize_unit sanitize_mpi_np2 PROPERTIES TIMEOUT 1800 LABELS "sanitize"
                       FIXTURES_REQUIRED asan_tree PROCESSORS 2)
  # The CI fuzz run: each libFuzzer target of the sanitized tree (cmake/Fuzz.cmake) for 20 s from the committed seed
  # corpus; any crash, sanitizer report or broken invariant fails it. Longer runs by hand: docs/reliability.md.
  include(Fuzz)
  add_test(NAME sanitize_fuzz COMMAND bash ${PROJECT_SOURCE_DIR}/tests/fuzz/run_fuzz.sh ${_asan_dir}/tests/fuzz
                                      ${PROJECT_SOURCE_DIR}/tests/fuzz 20 ${UNLEARN_FUZZ_TARGETS})
  set_tests_properties(sanitize_fuzz PROPERTIES TIMEOUT 600 LABELS "sanitize;fuzz" FIXTURES_REQUIRED asan_tree
                       PROCESSORS 1)
endif()
