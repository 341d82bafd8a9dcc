# Test registration helpers. MPI tests run under mpiexec with a timeout, so a deadlock fails fast.
include(GoogleTest)

set(UNLEARN_MPIEXEC_PREFLAGS --oversubscribe --bind-to none ${MPIEXEC_PREFLAGS})
# Root may run mpiexec in CI containers; one thread per rank when ranks share the 2 cores.
set(UNLEARN_TEST_ENV OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
    OMPI_MCA_rmaps_base_oversubscribe=1)
if(UNLEARN_SANITIZE)
  # Open MPI and hwloc keep ~120 KB per rank alive until exit: LeakSanitizer would fail every MPI program.
  # Leak detection stays on for the unit tests.
  set(UNLEARN_MPI_TEST_ENV ${UNLEARN_TEST_ENV} ASAN_OPTIONS=detect_leaks=0)
else()
  set(UNLEARN_MPI_TEST_ENV ${UNLEARN_TEST_ENV})
endif()

# unlearn_add_mpi_test(NAME name TARGET tgt RANKS n [TIMEOUT s] [LABELS l...] [ARGS a...])
# Runs `mpiexec -n RANKS tgt ARGS` with labels "mpi" and "np<RANKS>" added.
function(unlearn_add_mpi_test)
  cmake_parse_arguments(T "" "NAME;TARGET;RANKS;TIMEOUT" "LABELS;ARGS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  if(T_RANKS GREATER UNLEARN_MPI_TEST_MAX_RANKS)
    return()
  endif()
  add_test(NAME ${T_NAME}
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${T_RANKS} ${UNLEARN_MPIEXEC_PREFLAGS}
                   $<TARGET_FILE:${T_TARGET}> ${MPIEXEC_POSTFLAGS} ${T_ARGS})
  set_tests_properties(${T_NAME} PROPERTIES TIMEOUT ${T_TIMEOUT} PROCESSORS ${T_RANKS}
                       LABELS "mpi;np${T_RANKS};${T_LABELS}" ENVIRONMENT "${UNLEARN_MPI_TEST_ENV}")
  if(UNLEARN_SEQUENTIAL_TESTS)
    set_tests_properties(${T_NAME} PROPERTIES RUN_SERIAL ON)
  endif()
endfunction()

# unlearn_add_mpi_test_ranks(PREFIX p TARGET tgt [RANKS 1 2 3 4] ...): one test per rank count (p_np1 ...).
function(unlearn_add_mpi_test_ranks)
  cmake_parse_arguments(T "" "PREFIX;TARGET;TIMEOUT" "RANKS;LABELS;ARGS" ${ARGN})
  if(NOT T_RANKS)
    set(T_RANKS 1 2 3 4)
  endif()
  foreach(n IN LISTS T_RANKS)
    unlearn_add_mpi_test(NAME ${T_PREFIX}_np${n} TARGET ${T_TARGET} RANKS ${n} TIMEOUT ${T_TIMEOUT}
                         LABELS ${T_LABELS} ARGS ${T_ARGS})
  endforeach()
endfunction()

# unlearn_add_script_test(NAME name SCRIPT file [LABELS ...] [TIMEOUT s] [ARGS ...]): a bash test.
function(unlearn_add_script_test)
  cmake_parse_arguments(T "" "NAME;SCRIPT;TIMEOUT" "LABELS;ARGS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  add_test(NAME ${T_NAME} COMMAND bash ${T_SCRIPT} ${T_ARGS})
  set_tests_properties(${T_NAME} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS "${T_LABELS}"
                       ENVIRONMENT "${UNLEARN_MPI_TEST_ENV};MPIEXEC=${MPIEXEC_EXECUTABLE};UNLEARN_BIN=$<TARGET_FILE:unlearn>")
endfunction()

# unlearn_add_unit_test(TARGET [TIMEOUT s]): one CTest entry runs the whole GoogleTest executable (label "unit").
# One process per executable, not per test case: each LibTorch process start costs about a second, which
# dominated CI time with one process per case.
function(unlearn_add_unit_test TARGET)
  cmake_parse_arguments(T "" "TIMEOUT" "" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 600)
  endif()
  add_test(NAME ${TARGET} COMMAND ${TARGET} --gtest_color=no)
  set_tests_properties(${TARGET} PROPERTIES LABELS unit TIMEOUT ${T_TIMEOUT} ENVIRONMENT "OMP_NUM_THREADS=1")
endfunction()
