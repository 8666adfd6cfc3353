in vec3 v_diffuse;
in vec3 v_obj;
flat in vec4 v_color;
flat in float v_scale;
flat in vec2 v_post;

layout(location = 0) out vec4 f_color;
layout(location = 1) out vec4 f_mask;

void main() {
    vec3 albedo = srgb_to_linear(v_color.rgb);
#if PATTERNED
    albedo *= 0.35 + 0.65 * fbm(v_obj * v_scale);
#endif
    f_color = vec4(adjust(linear_to_srgb(albedo * v_diffuse), v_post), 1.0);
    f_mask = vec4(0.5);
}
