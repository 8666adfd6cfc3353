// Specialised by BG_MODE (see object.frag for why).
uniform sampler2DArray u_backgrounds;

in vec2 v_local;
flat in vec4 v_info;
flat in vec4 v_a;
flat in vec3 v_b;
flat in vec4 v_crop;
flat in vec2 v_post;

layout(location = 0) out vec4 f_color;
layout(location = 1) out vec4 f_mask;

void main() {
#if BG_MODE == 0
    vec3 c = v_a.rgb;
#elif BG_MODE == 1
    float t = dot(v_local - 0.5, vec2(cos(v_info.z), sin(v_info.z))) * 1.41421 + 0.5;
    vec3 c = mix(v_a.rgb, v_b, clamp(t, 0.0, 1.0));
#elif BG_MODE == 2
    vec3 c = mix(v_a.rgb, v_b, smoothstep(0.25, 0.75, fbm(vec3(v_local * v_info.w, v_a.w))));
#else
    vec3 c = texture(u_backgrounds, vec3(mix(v_crop.xy, v_crop.zw, v_local), v_info.y)).rgb;
#endif
    f_color = vec4(adjust(c, v_post), 1.0);
    f_mask = vec4(0.0);
}
