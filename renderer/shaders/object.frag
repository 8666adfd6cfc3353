// Specialised at compile time (TEXTURE_MODE, PATTERN, MODEL_TEXTURE, TRIPLANAR): llvmpipe runs
// both sides of a branch, so one shader with every mode would pay for all of them per pixel.
uniform sampler2DArray u_model_tex;  // the model's own textures
uniform sampler2DArray u_images;     // texture-variation images

in vec3 v_diffuse;
in vec3 v_spec;
in vec3 v_uvl;
in vec3 v_color;
in vec3 v_obj;
in vec3 v_obj_normal;
flat in vec4 v_tex;
flat in vec3 v_col1;
flat in vec3 v_col2;
flat in vec4 v_dir;
flat in vec2 v_post;
in vec3 v_lit;

layout(location = 0) out vec4 f_color;
layout(location = 1) out vec4 f_mask;

float pattern(vec3 q) {
#if PATTERN == 0
    vec3 f = floor(q);
    return mod(f.x + f.y + f.z, 2.0);
#elif PATTERN == 1
    return step(0.5, fract(dot(q, v_dir.xyz)));
#elif PATTERN == 2
    return smoothstep(0.3, 0.7, fbm(q));
#else
    return step(length(fract(q) - 0.5), 0.3);
#endif
}

void main() {
#if PER_VERTEX_COLOUR
    f_color = vec4(adjust(linear_to_srgb(v_lit), v_post), 1.0);
    f_mask = vec4(1.0);
    return;
#endif
#if TEXTURE_MODE == 0
    vec3 albedo = v_color;
  #if MODEL_TEXTURE
    if (v_uvl.z > -0.5) albedo *= srgb_to_linear(texture(u_model_tex, vec3(v_uvl.xy, floor(v_uvl.z + 0.5))).rgb);
  #endif
#elif TEXTURE_MODE == 1
    vec3 albedo = v_col1;
#elif TEXTURE_MODE == 2
    vec3 albedo = mix(v_col1, v_col2, pattern(v_obj * v_tex.w));
#else
    float k = 0.25 * v_tex.w;
  #if TRIPLANAR
    vec3 p = v_obj * k;
    vec3 w = abs(normalize(v_obj_normal));
    w /= (w.x + w.y + w.z + 1e-5);
    vec3 c = w.x * texture(u_images, vec3(p.yz, v_tex.z)).rgb
           + w.y * texture(u_images, vec3(p.xz, v_tex.z)).rgb
           + w.z * texture(u_images, vec3(p.xy, v_tex.z)).rgb;
  #else
    vec3 c = texture(u_images, vec3(v_uvl.xy * k, v_tex.z)).rgb;
  #endif
    vec3 albedo = srgb_to_linear(c);
#endif
    f_color = vec4(adjust(linear_to_srgb(albedo * v_diffuse + v_spec), v_post), 1.0);
    f_mask = vec4(1.0);
}
