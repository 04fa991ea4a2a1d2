// The type dialect: one shader source serves every precision. IN_F16 / OUT_F16 select fp16 storage for
// inputs / outputs; arithmetic is fp32 unless a variant says otherwise (on devices like lavapipe fp16
// arithmetic is slower than fp32, and fp32 accumulation is what mixed precision promises).
#if defined(IN_F16) || defined(OUT_F16) || defined(COOPMAT)
#extension GL_EXT_shader_16bit_storage : require
#endif
#ifdef COOPMAT
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#endif
#extension GL_EXT_control_flow_attributes : enable

#ifdef IN_F16
#define IN_T float16_t
#else
#define IN_T float
#endif
#ifdef OUT_F16
#define OUT_T float16_t
#else
#define OUT_T float
#endif
